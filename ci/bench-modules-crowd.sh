#!/usr/bin/env bash
# Extra modules benchmark of docs/benchmarks.md (## Extra modules): server
# CPU per 640x480@30 stream (player → filter → WebRtcEndpoint → headless
# Chromium) for CrowdDetectorFilter at processingWidth 160, 320 and 640 and
# for PlateDetectorFilter, against a baseline that decodes and re-encodes
# without a filter. Not a test: prints Markdown table rows and JSON lines.
#
#   ci/bench-modules.sh   (env: STREAMS, default 2; WINDOW s, default 10;
#                        KMS_BIN: a server binary instead of building the
#                        release one; kms-crowddetector is opt-level 2 in
#                        the dev profile too)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"

cd "$repo"
if [[ -z "${KMS_BIN:-}" ]]; then
  cargo build --release -q -p kurento-media-server -p module-creator
  KMS_BIN="$target/release/kurento-media-server"
fi
cd tests/browser
if [[ ! -d node_modules/kurento-utils || ! -d node_modules/playwright-core ]]; then
  npm ci --ignore-scripts --no-audit --no-fund >/dev/null
fi
mkdir -p build
node_modules/.bin/esbuild lib/browser-entry.js --bundle --format=iife --platform=browser \
  --outfile=build/bundle.js --log-level=warning
KMS_BIN="$KMS_BIN" exec node bench-modules.js
