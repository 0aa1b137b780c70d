#!/usr/bin/env bash
# Filters benchmark of docs/benchmarks.md (## Filters): server CPU per
# 640x480@30 stream through GStreamerFilter(videoflip) and
# ImageOverlayFilter (player → filter → WebRtcEndpoint → headless
# Chromium), against a baseline that decodes and re-encodes without a
# filter. Not a test: prints Markdown table rows and JSON lines.
#
#   ci/bench-filters.sh   (env: STREAMS, default 2; WINDOW s, default 10;
#                          EXTRA_FILTERS=ZBarFilter,... more filter classes
#                          created with no constructor parameters, or those
#                          of FILTER_PARAMS='{"Type": {...}}', "$ROOT" = the
#                          media root holding logo.png; FILTER_CALLS=
#                          '{"Type": ["method"]}' parameterless calls after
#                          create)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"

cd "$repo"
cargo build --release -q -p kurento-media-server
cd tests/browser
if [[ ! -d node_modules/kurento-utils || ! -d node_modules/playwright-core ]]; then
  npm ci --ignore-scripts --no-audit --no-fund >/dev/null
fi
mkdir -p build
node_modules/.bin/esbuild lib/browser-entry.js --bundle --format=iife --platform=browser \
  --outfile=build/bundle.js --log-level=warning
KMS_BIN="$target/release/kurento-media-server" exec node bench-filters.js
