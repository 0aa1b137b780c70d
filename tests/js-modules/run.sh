#!/usr/bin/env bash
# Generates the JS client modules of every fixture descriptor with
# module-creator, then loads them into the official npm kurento-client 7.3.0
# and compares them with the official packages (register.test.js).
#
#   tests/js-modules/run.sh
#
# CARGO_TARGET_DIR is honoured; KMS_KMD_DIR overrides the descriptor dir.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ ! -d "$here/node_modules/kurento-client" ]]; then
  (cd "$here" && npm install --ignore-scripts --no-audit --no-fund)
fi

out="$(mktemp -d "${TMPDIR:-/tmp}/kurento-rs-js-modules.XXXXXX")"
trap 'rm -rf "$out"' EXIT

(cd "$repo" && KMS_JS_OUT="$out" cargo test -p module-creator --test js_client)
(cd "$here" && KMS_JS_MODULES_DIR="$out" node --test register.test.js)
