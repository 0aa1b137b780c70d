#!/usr/bin/env bash
# Forwarded-request overhead in cluster mode (docs/cluster.md): invoke
# latency p50/p99 and throughput when the client's node owns the pipeline
# (direct) and when it forwards to another node. Not a test: prints numbers
# for docs/benchmarks.md. Uses the debug server binary (dependencies are
# optimized, our crates are not) unless KMS_BIN points elsewhere.
#
#   ci/bench-cluster.sh [requests] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p kurento-media-server 2>&1 | tail -1
cd tests/cluster
[[ -d node_modules/kurento-client ]] || npm ci --ignore-scripts --no-audit --no-fund >/dev/null
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
KMS_LOG=warn node bench.js "${1:-3000}" "${2:-4}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
