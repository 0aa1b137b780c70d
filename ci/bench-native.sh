#!/usr/bin/env bash
# The native WebRTC transport against webrtcbin, side by side in one run
# (docs/benchmarks.md "Native transport"): the same loopback ramp, the same
# one-to-many fan-out (1 presenter, N viewers by plain connect) and the same
# browser setup latency, once per transport (KMS_WEBRTC_TRANSPORT). Not a
# test: prints Markdown rows and JSON lines of the underlying scripts.
#
#   ci/bench-native.sh [ramp|one2many|browser|all]
#
# Env: STEPS (loopback sessions, default 1,16,48), VSTEPS (viewers, default
# 1,10,25,50), RUNS (browser setups, default 10), WINDOW (seconds per step,
# default 10), TRANSPORTS (default "webrtcbin native").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
what="${1:-all}"
for t in ${TRANSPORTS:-webrtcbin native}; do
  echo "## transport: $t"
  export KMS_WEBRTC_TRANSPORT="$t"
  case "$what" in
    ramp | all) STEPS="${STEPS:-1,16,48}" "$here/bench-webrtc.sh" ramp ;;&
    one2many | all) STEPS="${VSTEPS:-1,10,25,50}" "$here/bench-dispatcher.sh" direct ;;&
    browser | all)
      RUNS="${RUNS:-10}" "$here/bench-webrtc.sh" browser
      KMS_BENCH_CONSTRAINTS=library RUNS="${RUNS:-10}" "$here/bench-webrtc.sh" browser
      ;;
    ramp | one2many) ;;
    *) echo "usage: $0 [ramp|one2many|browser|all]" >&2; exit 2 ;;
  esac
done
