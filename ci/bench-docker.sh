#!/usr/bin/env bash
# Container image benchmark (docs/benchmarks.md): image size and the
# server's start-to-ready time inside it - from `podman run` (container
# created and started) to the first JSON-RPC pong on its WebSocket, measured
# with docker/healthchecker.sh. Uses the image ci/test-docker.sh built.
#
#   ci/bench-docker.sh [runs (default 7)]
set -euo pipefail
cd "$(dirname "$0")/.."
image="${KMS_DOCKER_IMAGE:-localhost/kurento-rs:test}"
runs="${1:-7}"
podman=(podman --runtime runc --cgroup-manager cgroupfs)
"${podman[@]}" image exists "$image" || { echo "no $image: run ci/test-docker.sh first" >&2; exit 1; }
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
echo "image $image: $((size / 1000000)) MB"
times=()
for i in $(seq 1 "$runs"); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  name="kms-bench-$$-$i"
  ts=$(date +%s%N)
  "${podman[@]}" run -d --rm --name "$name" --network host -e KMS_PORT="$port" "$image" >/dev/null 2>&1
  started=$(date +%s%N)
  until KMS_PORT=$port KMS_HEALTHCHECK_TIMEOUT=1 docker/healthchecker.sh 2>/dev/null; do sleep 0.02; done
  ready=$(date +%s%N)
  times+=("$(((ready - ts) / 1000000)) $(((ready - started) / 1000000))")
  "${podman[@]}" stop -t 10 "$name" >/dev/null 2>&1 || true
done
med() { sort -n | awk '{ v[NR] = $1 } END { printf "%d ms (min %d, max %d)", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
echo "start-to-ready over $runs runs: podman run -> first pong: $(printf '%s\n' "${times[@]}" | cut -d' ' -f1 | med)"
echo "  of which after 'podman run -d' returned: $(printf '%s\n' "${times[@]}" | cut -d' ' -f2 | med)"
