#!/usr/bin/env bash
# WebRtcEndpoint in a real browser: headless Debian Chromium (playwright-core,
# never a downloaded browser) with the official kurento-utils in the page and
# the official kurento-client in Node, against the real server binary.
#
#   tests/browser/run.sh [node --test args...]
#   tests/browser/run.sh --bench-latency [runs]   (benchmark, bench-latency.js)
#
# KMS_BIN overrides the server binary (default <repo>/target/debug/
# kurento-media-server, built if missing); CHROMIUM_BIN the browser.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -z "${KMS_BIN:-}" ]]; then
  export KMS_BIN="$repo/target/debug/kurento-media-server"
  if [[ ! -x "$KMS_BIN" ]]; then
    (cd "$repo" && cargo build -p kurento-media-server)
  fi
fi

cd "$here"
if [[ ! -d node_modules/kurento-utils || ! -d node_modules/playwright-core ]]; then
  npm ci --ignore-scripts --no-audit --no-fund >/dev/null
fi
mkdir -p build
node_modules/.bin/esbuild lib/browser-entry.js --bundle --format=iife --platform=browser \
  --outfile=build/bundle.js --log-level=warning
# The server's dashboard page (dashboard.test.js loads it from dashboard/dist).
"$repo/dashboard/build.sh" >/dev/null

if [[ "${1:-}" == --bench-latency ]]; then
  shift
  exec node bench-latency.js "$@"
fi
if [[ $# -eq 0 ]]; then
  set -- *.test.js
fi
exec node --test --test-concurrency=1 --test-timeout=180000 "$@"
