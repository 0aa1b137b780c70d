#!/usr/bin/env bash
# Detection filters benchmark of docs/benchmarks.md (## Detection filters):
# server CPU per 640x480@30 stream through ZBarFilter and FaceOverlayFilter
# (PlayerEndpoint → filter → WebRtcEndpoint → headless Chromium), against
# the same chain without a filter. Not a test: prints Markdown table rows
# and JSON lines to paste into the doc.
#
#   ci/bench-detect.sh            (env: STREAMS, default 2; WINDOW s, default 10)
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
KMS_BIN="$target/release/kurento-media-server" exec node bench-detect.js
