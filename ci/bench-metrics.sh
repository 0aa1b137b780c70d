#!/usr/bin/env bash
# Cost of a /metrics scrape with many objects (docs/benchmarks.md,
# "Operations"). Not a test: prints a Markdown row.
#
#   ci/bench-metrics.sh [elements (1000)] [scrapes (50)]
#
# Release build; the server and the client run on this machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"
cargo build --release -q -p kurento-media-server
(cd tests/conformance && [[ -d node_modules/kurento-client ]] || npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
KMS_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/kurento-media-server" \
  node "$here/bench-metrics.js" "${1:-1000}" "${2:-50}"
