#!/usr/bin/env bash
# Forwarded-request overhead in cluster mode (docs/cluster.md): invoke
# latency p50/p99 and throughput when the client's node owns the pipeline
# (direct) and when it forwards to another node. Not a test: prints numbers
# for docs/benchmarks.md. Uses the debug server binary (dependencies are
# optimized, our crates are not) unless KMS_BIN points elsewhere.
#
#   ci/bench-cluster.sh [requests] [connections]
#
# Capacity: WebRTC loopback sessions (ci/bench-webrtc.sh's generator, media
# and ICE on 127.0.0.1 only) through node A of a 3-node cluster (release
# build, redis-server on 127.0.0.1), pipelines placed least-loaded over the
# nodes; CPU, RSS and threads are the sums over the 3 server processes.
# Then the same ramp against one plain (non-cluster) node. Prints both
# tables and the per-node pipeline counts at each step. Env: WINDOW
# (seconds measured per step, default 10).
#
#   ci/bench-cluster.sh capacity [steps, default 1,8,16,24]
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == capacity ]]; then
  steps="${2:-1,8,16,24}"
  repo="$(pwd)"
  target="${CARGO_TARGET_DIR:-$repo/target}"
  cargo build --release -q -p kurento-media-server
  cargo build --release -q -p kms-elements --example webrtc_loadgen
  server="$target/release/kurento-media-server"
  loadgen="$target/release/examples/webrtc_loadgen"
  # The same media as ci/bench-webrtc.sh (20 s of 640x480@30 VP8 ~500 kbps
  # and Opus stereo), shared with it.
  media="$target/bench-webrtc-media.webm"
  if [[ ! -s "$media" ]]; then
    gst-launch-1.0 -q -e \
      videotestsrc pattern=smpte horizontal-speed=4 num-buffers=600 ! video/x-raw,width=640,height=480,framerate=30/1 \
      ! vp8enc deadline=1 cpu-used=4 target-bitrate=500000 keyframe-max-dist=300 end-usage=cbr ! webmmux name=m \
      ! filesink location="$media" \
      audiotestsrc wave=sine num-buffers=1000 samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=2 \
      ! opusenc bitrate=48000 ! m.
  fi

  tmp="$(mktemp -d "${TMPDIR:-/tmp}/kms-bench-cluster.XXXXXX")"
  pids=()
  poller=""
  # Stops what this mode started: the poller, then the servers (newest
  # first, so the nodes stop before redis-server).
  cleanup() {
    local i p
    if [[ -n "$poller" ]]; then
      kill "$poller" 2>/dev/null || true
      wait "$poller" 2>/dev/null || true
      poller=""
    fi
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      p="${pids[i]}"
      kill "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    done
    pids=()
  }
  trap 'cleanup; rm -rf "$tmp"' EXIT
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  wait_port() {
    local _
    for _ in $(seq 200); do
      (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
      sleep 0.1
    done
    echo "FAIL: nothing listens on 127.0.0.1:$1" >&2
    return 1
  }
  # start_node <name> <min RTP port> [redis port]: a release server with
  # its own config dir, websocket port and RTP port range (cluster mode
  # when a redis port is given). Sets node_port and node_pid.
  start_node() {
    local name="$1" min="$2" redis="${3:-}" dir="$tmp/$1" cluster=""
    node_port="$(free_port)"
    mkdir -p "$dir/modules/kurento"
    if [[ -n "$redis" ]]; then
      cluster=", \"cluster\": {\"redisUrl\": \"redis://127.0.0.1:$redis\", \"nodeId\": \"$name\", \"advertisedAddress\": \"127.0.0.1:$node_port\"}"
    fi
    cat >"$dir/kurento.conf.json" <<JSON
{"mediaServer": {"resources": {"garbageCollectorPeriod": 240},
 "net": {"websocket": {"port": $node_port, "path": "kurento", "address": "127.0.0.1"}}$cluster}}
JSON
    printf 'networkInterfaces=lo\n' >"$dir/modules/kurento/WebRtcEndpoint.conf.ini"
    printf 'minPort=%d\nmaxPort=%d\n' "$min" $((min + 999)) >"$dir/modules/kurento/BaseRtpEndpoint.conf.ini"
    KMS_LOG=warn "$server" --conf-file "$dir/kurento.conf.json" >"$dir/server.log" 2>&1 &
    node_pid=$!
    pids+=("$node_pid")
    wait_port "$node_port"
  }
  ramp() { # ramp <port> <pid,pid,...>
    KMS_ICE_LOOPBACK_ONLY=1 "$loadgen" --url "ws://127.0.0.1:$1/kurento" --pid "$2" --file "$media" \
      --window "${WINDOW:-10}" ramp "$steps"
  }

  echo "# $(date -u +%Y-%m-%dT%H:%MZ) server: $server ($("$server" --version 2>&1 | head -n 1))"
  echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), GStreamer $(gst-launch-1.0 --version | sed -n 2p | awk '{print $2}')"
  echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

  # --- 3-node cluster, every session through node A.
  redis_port="$(free_port)"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --dir "$tmp" >"$tmp/redis.log" 2>&1 &
  pids+=("$!")
  wait_port "$redis_port"
  rcli() { redis-cli -p "$redis_port" --raw "$@"; }
  all=()
  n=0
  for name in node-a node-b node-c; do
    start_node "$name" $((52000 + 1000 * n)) "$redis_port"
    all+=("$node_pid")
    [[ "$name" == node-a ]] && port_a="$node_port"
    n=$((n + 1))
  done
  for _ in $(seq 50); do
    [[ "$(rcli SCARD kms:cluster:nodes)" == 3 ]] && break
    sleep 0.1
  done
  echo "# cluster: $(rcli SCARD kms:cluster:nodes) nodes registered, pids $(IFS=,; echo "${all[*]}"), client on node-a only"
  # Pipelines per node, polled during the ramp (the ramp releases its
  # sessions at the end): one line per poll, "total node-a node-b node-c".
  (
    set +e
    while :; do
      rcli HVALS kms:cluster:pipelines | grep -o '"node":"[^"]*"' | cut -d'"' -f4 |
        awk '{ c[$1]++; t++ } END { printf "%d %d %d %d\n", t, c["node-a"], c["node-b"], c["node-c"] }' >>"$tmp/placement"
      sleep 0.5
    done
  ) &
  poller=$!
  echo
  echo "## 3 cluster nodes (CPU, RSS, threads summed over the 3 processes)"
  ramp "$port_a" "$(IFS=,; echo "${all[*]}")"
  kill "$poller" 2>/dev/null || true
  wait "$poller" 2>/dev/null || true
  poller=""
  echo
  echo "pipelines per node while the ramp held each step (from kms:cluster:pipelines):"
  echo "| sessions | node-a | node-b | node-c |"
  echo "| --- | --- | --- | --- |"
  # Last poll seen at each total while the count was still rising.
  awk -v steps="$steps" 'BEGIN { n = split(steps, s, ","); m = -1 }
    $1 >= m { m = $1; last[$1] = $0 }
    END { for (i = 1; i <= n; i++) if (s[i] in last) { split(last[s[i]], f, " "); printf "| %d | %d | %d | %d |\n", f[1], f[2], f[3], f[4] } else printf "| %d | (not seen) | | |\n", s[i] }' \
    "$tmp/placement"
  # Remote releases leave the directory at the owner's next heartbeat (1 s).
  sleep 2.5
  echo "pipelines left in the directory 2.5 s after the ramp: $(rcli HLEN kms:cluster:pipelines)"
  cleanup

  # --- the same ramp against one plain node.
  echo
  echo "## 1 node, no cluster"
  start_node single 52000
  ramp "$node_port" "$node_pid"
  cleanup
  echo
  echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi

cargo build -p kurento-media-server 2>&1 | tail -1
cd tests/cluster
[[ -d node_modules/kurento-client ]] || npm ci --ignore-scripts --no-audit --no-fund >/dev/null
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
KMS_LOG=warn node bench.js "${1:-3000}" "${2:-4}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
