#!/usr/bin/env bash
# Cluster directory load at scale (docs/cluster.md "Directory load at 1,000
# nodes"): fills a real redis-server with the cluster's keys in their real
# shapes (kms-cluster/src/directory.rs) for NODES nodes and PIPELINES
# pipelines, reports Redis's memory, and times with redis-benchmark each
# command the nodes send: the heartbeat's SET, SMEMBERS and MGET of every
# node record, and the routing HGET + GET of a forwarded request. Not a test:
# prints the numbers the model in docs/cluster.md uses.
#
#   ci/bench-directory.sh [nodes] [pipelines] [sessions]
set -euo pipefail
nodes="${1:-1000}"
pipelines="${2:-100000}"
sessions="${3:-100000}"
command -v redis-server >/dev/null || { echo "needs redis-server (ci/setup.sh --with-tests)" >&2; exit 1; }

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >/dev/null &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
cli() { redis-cli -p "$port" "$@"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(redis-server --version | cut -d' ' -f3); load $(cut -d' ' -f1 /proc/loadavg)"
base=$(cli info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')

# The keys as a cluster of $nodes nodes with $pipelines pipelines spread
# evenly and $sessions client sessions (each with one link) writes them.
python3 - "$nodes" "$pipelines" "$sessions" <<'EOF' | cli --pipe >/dev/null
import json, sys, uuid
n, p, s = (int(x) for x in sys.argv[1:4])
out = sys.stdout
def cmd(*a):
    out.write(f"*{len(a)}\r\n")
    for x in a:
        b = str(x)
        out.write(f"${len(b.encode())}\r\n{b}\r\n")
P = "kms:cluster:"
epochs = [str(uuid.uuid4()) for _ in range(n)]
for i in range(n):
    rec = {"id": f"kms-{i}", "address": f"10.0.{i // 250}.{i % 250}:8888", "epoch": epochs[i],
           "load": {"cpuPercent": 37.5, "pipelines": p // n, "webrtcEndpoints": 2 * p // n, "draining": False},
           "updatedMs": 1796000000000}
    cmd("SET", f"{P}node:kms-{i}", json.dumps(rec, separators=(",", ":")))
    cmd("SADD", f"{P}nodes", f"kms-{i}")
for j in range(p):
    i = j % n
    pid = f"{uuid.uuid4()}_kurento.MediaPipeline"
    cmd("HSET", f"{P}pipelines", pid, json.dumps({"node": f"kms-{i}", "epoch": epochs[i], "tenant": ""}, separators=(",", ":")))
    cmd("SADD", f"{P}node-pipelines:kms-{i}", pid)
for k in range(s):
    sid = str(uuid.uuid4())
    cmd("HSET", f"{P}session:{sid}", "tenant", "", "home", f"kms-{k % n}", f"link:kms-{(k + 1) % n}", str(uuid.uuid4()))
    cmd("PEXPIRE", f"{P}session:{sid}", 86400000)
EOF
used=$(cli info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
echo "keys: $(cli dbsize); directory memory: $(( (used - base) / 1048576 )) MiB for $nodes nodes, $pipelines pipelines, $sessions sessions"

one=$(cli --raw hrandfield kms:cluster:pipelines)
keys=()
for i in $(seq 0 $((nodes - 1))); do keys+=("kms:cluster:node:kms-$i"); done
rec=$(cli --raw get kms:cluster:node:kms-0)
bench() { # label, requests, command...
  local label=$1 n=$2; shift 2
  local rps
  rps=$(redis-benchmark -p "$port" -c 8 -n "$n" -q "$@" 2>/dev/null | tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
  printf '%-44s %12s ops/s  %8.1f µs/op\n' "$label" "$rps" "$(python3 -c "print(1e6/float('$rps'))")"
}
cli config resetstat >/dev/null
echo "redis-benchmark, 8 clients (client-side rate: bounded by the benchmark client and loopback):"
bench "SET node record PX (heartbeat)" 200000 SET kms:cluster:node:kms-0 "$rec" PX 5000
bench "SMEMBERS nodes ($nodes ids)" 20000 SMEMBERS kms:cluster:nodes
bench "MGET of $nodes node records" 5000 MGET "${keys[@]}"
bench "HGET pipelines <id> (routing)" 200000 HGET kms:cluster:pipelines "$one"
bench "GET node record (routing)" 200000 GET kms:cluster:node:kms-0
echo "Redis's own time per call (INFO commandstats, usec_per_call: the server CPU the model uses):"
cli info commandstats | tr -d '\r' | grep -E '^cmdstat_(set|smembers|mget|hget|get):' \
  | sed -E 's/^cmdstat_([a-z]+):calls=([0-9]+),usec=[0-9]+,usec_per_call=([0-9.]+).*/  \1: \3 µs per call (\2 calls)/'
