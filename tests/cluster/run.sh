#!/usr/bin/env bash
# The cluster suite: redis-server and three server processes on 127.0.0.1,
# driven by the official kurento-client (docs/cluster.md).
#
#   tests/cluster/run.sh [node --test args]
#
# Needs the debug server binary (cargo build) or KMS_BIN.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
if [[ ! -d node_modules/kurento-client ]]; then
  npm ci --ignore-scripts --no-audit --no-fund >/dev/null
fi
command -v redis-server >/dev/null || { echo "tests/cluster: redis-server missing (ci/setup.sh --with-tests installs it)" >&2; exit 1; }
if [[ $# -eq 0 ]]; then set -- *.test.js; fi
node --test --test-concurrency=1 "$@"
