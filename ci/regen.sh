#!/usr/bin/env bash
# Regenerates the server code of the built-in modules checked in under
# kms-core/src/auto, kms-elements/src/auto and kms-filters/src/auto from
# their descriptors (*.kmd.json), after a descriptor or module-creator
# changed. `ci/regen.sh --check` only compares (exit status 1 and a diff if
# stale); `cargo test -p module-creator --test checked_in` fails the same way.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet -p module-creator --bin kurento-module-creator -- builtins "$@"
