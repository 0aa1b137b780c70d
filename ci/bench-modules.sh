#!/usr/bin/env bash
# Extra modules benchmark of docs/benchmarks.md (## Extra modules): both
# halves, chroma + pointerdetector (ci/bench-modules-chroma.sh) and
# crowddetector + platedetector (ci/bench-modules-crowd.sh). Not a test.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/bench-modules-chroma.sh"
"$here/bench-modules-crowd.sh"
