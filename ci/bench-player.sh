#!/usr/bin/env bash
# PlayerEndpoint benchmark of docs/benchmarks.md (## Player): server CPU per
# player, VP8/Opus WebM (640x480@30) → WebRtcEndpoint → headless Chromium,
# with useEncodedMedia (no decode) and decoded + re-encoded. Not a test:
# prints Markdown table rows and JSON lines to paste into the doc.
#
#   ci/bench-player.sh            (env: PLAYERS, default 4; WINDOW s, default 10)
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
KMS_BIN="$target/release/kurento-media-server" exec node bench-player.js
