#!/usr/bin/env bash
# Composite benchmark of docs/benchmarks.md (## Composite): 4 headless
# Chromium inputs (fake camera 640x480@30 + microphone) into a Composite
# (800x600, 30 fps), server CPU %, RSS and the frame rate a viewer decodes.
# Not a test: prints Markdown table rows and JSON lines to paste into the doc.
#
#   ci/bench-composite.sh     (env: INPUTS, default 4; WINDOW s, default 10;
#                              FRAMERATE of the mix, default 30)
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
KMS_BIN="$target/release/kurento-media-server" exec node bench-composite.js
