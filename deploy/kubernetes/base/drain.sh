#!/usr/bin/env bash
# preStop hook of the media server pods (docs/kubernetes.md, "Rolling
# restart"). Kubernetes runs it in the container before it sends SIGTERM:
#
#   1. SIGUSR1 to the server (PID 1: the image's entrypoint `exec`s it), which
#      starts drain mode: `/ready` answers 503 and requests that would start a
#      new session get 40009 "Server is draining"; existing sessions go on.
#   2. Wait until no media pipeline is left on this server (`kms_pipelines`
#      from `/metrics` is 0), polling every KMS_DRAIN_POLL seconds, for at most
#      KMS_DRAIN_TIMEOUT seconds.
#   3. Return: the kubelet then sends SIGTERM, and the server shuts down
#      cleanly (pipelines to NULL, recordings finalized, sockets closed).
#
# It waits on pipelines, not on sessions or connections: an application
# server typically keeps one kurento-client connection open for its whole
# life, which would hold a drain forever; with no media left here, closing
# that connection costs the client one reconnection (to another pod, through
# the Service) and nothing else.
#
# KMS_DRAIN_TIMEOUT must stay below the pod's terminationGracePeriodSeconds
# (the kubelet kills the hook, then the server, when that runs out), leaving
# the server time for its SIGTERM shutdown. The hook's lines go to the
# server's stderr (so `kubectl logs` shows them) when it can write there.
#
# Variables: KMS_DRAIN_TIMEOUT (600), KMS_DRAIN_POLL (2), KMS_PORT (8888),
# KMS_DRAIN_HOST (127.0.0.1), KMS_DRAIN_PID (1), KMS_ACCESS_TOKEN or the
# first token of KMS_ACCESS_TOKENS (sent to /metrics when set).
# Exit 0: drained, or the timeout ran out, or the server is already gone.
# Exit 1: /metrics could not be read (the kubelet records a FailedPreStopHook
# event with this script's output and goes on with SIGTERM).
# Pure bash (/dev/tcp) and coreutils: the image has no HTTP client.
set -u

pid="${KMS_DRAIN_PID:-1}"
host="${KMS_DRAIN_HOST:-127.0.0.1}"
port="${KMS_PORT:-8888}"
limit="${KMS_DRAIN_TIMEOUT:-600}"
poll="${KMS_DRAIN_POLL:-2}"

token="${KMS_ACCESS_TOKEN:-}"
if [[ -z "$token" && -n "${KMS_ACCESS_TOKENS:-}" ]]; then
  first="${KMS_ACCESS_TOKENS%%,*}"
  token="${first%%:*}"
fi
auth=""
[[ -n "$token" ]] && auth="Authorization: Bearer ${token}"$'\r\n'

log() {
  local line
  line="[drain] $(date -u +%H:%M:%S) $*"
  echo "$line" >&2
  { echo "$line" >>"/proc/${pid}/fd/2"; } 2>/dev/null || true
}

# Prints the number of pipelines alive; or fails, printing why, when /metrics
# does not answer 200 with a kms_pipelines line within 5 s.
pipelines() {
  local response status line n=""
  # HTTP/1.0: the server closes the connection after its answer. The inner
  # script gets its values as arguments ($0 $1 $2), hence single quotes.
  # shellcheck disable=SC2016
  response="$(timeout --kill-after=1 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET /metrics HTTP/1.0\r\nHost: %s:%s\r\n%s\r\n" "$0" "$1" "$2" >&3 || exit 1
    cat <&3' "$host" "$port" "$auth" 2>/dev/null)" || true
  status="${response%%$'\n'*}"
  if [[ ! "$status" =~ ^HTTP/1\.[01]\ 200 ]]; then
    echo "GET http://${host}:${port}/metrics answered '${status%$'\r'}'"
    return 1
  fi
  while IFS= read -r line; do
    if [[ "$line" =~ ^kms_pipelines[[:space:]]+([0-9]+) ]]; then
      n="${BASH_REMATCH[1]}"
      break
    fi
  done <<<"$response"
  if [[ -z "$n" ]]; then
    echo "no kms_pipelines in /metrics"
    return 1
  fi
  echo "$n"
}

if ! kill -USR1 "$pid" 2>/dev/null; then
  log "no server process $pid: nothing to drain"
  exit 0
fi
log "drain mode on (SIGUSR1 to $pid): new sessions refused, waiting up to ${limit}s for pipelines to end"

now_ms() { local t="${EPOCHREALTIME/[.,]/}"; echo $((t / 1000)); }
start=$(now_ms)
deadline=$((start + limit * 1000))
next_report=$((start + 30000))
while :; do
  if ! n="$(pipelines)"; then
    log "cannot read /metrics (${n}): stopping without waiting"
    exit 1
  fi
  now=$(now_ms)
  elapsed=$(((now - start) / 1000))
  if ((n == 0)); then
    log "no pipelines left after ${elapsed}s: handing over to SIGTERM"
    exit 0
  fi
  if ((now >= deadline)); then
    log "$n pipeline(s) still alive after ${limit}s (KMS_DRAIN_TIMEOUT): handing over to SIGTERM"
    exit 0
  fi
  if ((now >= next_report)); then
    log "$n pipeline(s) still alive after ${elapsed}s"
    next_report=$((now + 30000))
  fi
  sleep "$poll"
done
