#!/usr/bin/env bash
# ChromaFilter benchmark of docs/benchmarks.md (## chroma module): the
# filters benchmark (ci/bench-filters.sh: 640x480@30 VP8 clip → filter →
# WebRtcEndpoint → headless Chromium, server CPU per stream) with a
# ChromaFilter row. Its calibration window covers the SMPTE clip's green
# bar, so the key is learned and replacement runs on every frame; the
# background is the bench's 128x128 logo, scaled to the frame.
#
#   ci/bench-chroma.sh   (env as ci/bench-filters.sh: STREAMS, WINDOW)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export EXTRA_FILTERS="ChromaFilter${EXTRA_FILTERS:+,$EXTRA_FILTERS}"
export FILTER_PARAMS='{"ChromaFilter": {"window": {"__module__": "chroma", "__type__": "WindowParam", "topRightCornerX": 200, "topRightCornerY": 40, "width": 60, "height": 200}, "backgroundImage": "file://$ROOT/logo.png"}}'
exec "$here/bench-filters.sh"
