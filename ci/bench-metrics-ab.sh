#!/usr/bin/env bash
# Metrics overhead A/B (docs/benchmarks.md "Metrics overhead", issue 11):
# alternates runs of a server built without the metrics code (A: any older
# binary, given as $1), this tree's release server (B) and the same with
# /metrics scraped every second (B+scrape), for the WebRTC loopback (16 sessions) and the RPC
# benchmark. Alternating A/B/B+scrape/A… spreads the machine's drift over both.
# Not a test: prints the rows to paste.
#
#   ci/bench-metrics-ab.sh <server-without-metrics> [pairs-of-runs]
#
# Build A from the commit before metrics landed, e.g.
#   git worktree add /tmp/premetrics b8aae73 && (cd /tmp/premetrics && cargo build --release -p kurento-media-server)
set -euo pipefail
cd "$(dirname "$0")/.."
a="${1:?usage: ci/bench-metrics-ab.sh <server-without-metrics> [pairs]}"
pairs="${2:-3}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p kurento-media-server -p bench-rpc
cargo build --release -q -p kms-elements --example webrtc_loadgen
b="$target/release/kurento-media-server"

echo "# A: $a; B: $b; B+scrape: B with GET /metrics every 1 s"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for i in $(seq "$pairs"); do
  for side in A B B+scrape; do
    case $side in
      A) export KMS_BENCH_SERVER="$a" KMS_BENCH_SCRAPE=0 ;;
      B) export KMS_BENCH_SERVER="$b" KMS_BENCH_SCRAPE=0 ;;
      *) export KMS_BENCH_SERVER="$b" KMS_BENCH_SCRAPE=1 ;;
    esac
    w=$(STEPS=16 WINDOW="${WINDOW:-15}" ci/bench-webrtc.sh ramp | grep '^{"mode"')
    r=$(BENCH_RPC_MEMORY=0 ci/bench-rpc "${RPC_PAIRS:-4000}" 2>/dev/null | grep '^connections=' | tr '\n' ' ')
    echo "$side run $i | webrtc $w | rpc $r | load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
