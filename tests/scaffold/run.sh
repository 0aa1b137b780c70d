#!/usr/bin/env bash
# Creates a module crate with `kurento-module-creator new demo`, builds and
# tests it (cargo test), starts its server binary and drives it with the
# official npm kurento-client 7.3.0 plus the crate's generated JS client
# (scaffold.test.js). The work is done by the ignored Rust test
# module-creator/tests/scaffold.rs; the scaffold is built in the same target
# directory as the workspace (CARGO_TARGET_DIR is honoured) to reuse
# compiled dependencies.
#
#   tests/scaffold/run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ ! -d "$here/node_modules/kurento-client" ]]; then
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund)
fi

cd "$repo"
cargo test -p module-creator --test scaffold -- --ignored --nocapture
