#!/usr/bin/env bash
# Extra modules benchmark of docs/benchmarks.md (## Extra modules: chroma,
# pointerdetector): the filters benchmark (ci/bench-filters.sh: 640x480@30
# VP8 clip → filter → WebRtcEndpoint → headless Chromium, server CPU per
# stream) with rows for ChromaFilter and PointerDetectorFilter.
# ChromaFilter's calibration window covers part of the moving SMPTE bars,
# so a key is learned and replacement runs on every frame (background: the
# bench's 128x128 logo scaled to the frame). PointerDetectorFilter tracks
# the colour of its calibration region (trackColorFromCalibrationRegion
# right after create) with two windows.
#
#   ci/bench-modules.sh   (env as ci/bench-filters.sh: STREAMS, WINDOW)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export EXTRA_FILTERS="ChromaFilter,PointerDetectorFilter${EXTRA_FILTERS:+,$EXTRA_FILTERS}"
export FILTER_PARAMS='{
  "ChromaFilter": {"window": {"__module__": "chroma", "__type__": "WindowParam", "topRightCornerX": 200, "topRightCornerY": 40, "width": 60, "height": 200}, "backgroundImage": "file://$ROOT/logo.png"},
  "PointerDetectorFilter": {"calibrationRegion": {"__module__": "pointerdetector", "__type__": "WindowParam", "topRightCornerX": 200, "topRightCornerY": 40, "width": 60, "height": 60},
    "windows": [{"__module__": "pointerdetector", "__type__": "PointerDetectorWindowMediaParam", "id": "a", "upperRightX": 0, "upperRightY": 0, "width": 200, "height": 200},
                {"__module__": "pointerdetector", "__type__": "PointerDetectorWindowMediaParam", "id": "b", "upperRightX": 400, "upperRightY": 200, "width": 200, "height": 200, "image": "file://$ROOT/logo.png"}]}
}'
export FILTER_CALLS='{"PointerDetectorFilter": ["trackColorFromCalibrationRegion"]}'
exec "$here/bench-filters.sh"
