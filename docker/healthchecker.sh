#!/usr/bin/env bash
# Container health check: healthy only when the server answers a real
# JSON-RPC `ping` over its WebSocket (upstream's checker only looks for an
# HTTP 500 from a bare upgrade, which a hung process behind an accepting
# socket can never give, but neither can it tell a wedged dispatcher).
#
# Pure bash (/dev/tcp) plus coreutils' `timeout`, so the runtime image needs
# no client tool. The frame is masked with the all-zero key (RFC 6455 only
# requires the mask bit), so the payload goes out as-is; the server's reply
# frames are unmasked, so the answer is plain text in the byte stream.
#
#   KMS_PORT (8888), KMS_PATH (kurento), KMS_HEALTHCHECK_HOST (127.0.0.1),
#   KMS_HEALTHCHECK_TIMEOUT (seconds, 3), KMS_ACCESS_TOKEN (sent when set).
# Exit 0 = healthy; 1 = no answer / refused / wrong answer.
set -u

host="${KMS_HEALTHCHECK_HOST:-127.0.0.1}"
port="${KMS_PORT:-8888}"
path="${KMS_PATH:-kurento}"
limit="${KMS_HEALTHCHECK_TIMEOUT:-3}"
auth=""
if [[ -n "${KMS_ACCESS_TOKEN:-}" ]]; then
  auth="Authorization: Bearer ${KMS_ACCESS_TOKEN}"$'\r\n'
fi

ping='{"jsonrpc":"2.0","id":1,"method":"ping","params":{"interval":240000}}'
# Payloads under 126 bytes use the one-byte length form.
len=${#ping}
frame_header="\\x81\\x$(printf '%02x' $((0x80 | len)))\\x00\\x00\\x00\\x00"

probe() {
  { exec 3<>"/dev/tcp/${host}/${port}"; } 2>/dev/null || { echo "healthcheck: ${host}:${port} refuses connections" >&2; return 1; }
  printf 'GET /%s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a3VyZW50by1oZWFsdGg=\r\nSec-WebSocket-Version: 13\r\n%s\r\n' \
    "$path" "$host" "$port" "$auth" >&3 || return 1
  printf "$frame_header" >&3 || return 1
  printf '%s' "$ping" >&3 || return 1
  # The 101 response, then the text frame carrying {"value":"pong"}. The
  # frame ends without a newline, so read up to each '}' rather than lines.
  local chunk
  while IFS= read -r -d '}' -u 3 chunk; do
    [[ "$chunk" == *'"value":"pong"'* ]] && return 0
  done
  return 1
}

export -f probe
export host port path auth ping frame_header
# The whole probe (connect included) is bounded: a SIGSTOPped server still
# completes TCP handshakes from its listen backlog but never answers.
timeout --kill-after=1 "$limit" bash -c probe
rc=$?
if [[ $rc -eq 124 || $rc -eq 137 ]]; then
  echo "healthcheck: no pong from ws://${host}:${port}/${path} within ${limit}s" >&2
fi
[[ $rc -eq 0 ]]
