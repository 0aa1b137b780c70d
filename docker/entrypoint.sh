#!/usr/bin/env bash
# Container entrypoint (spec §11.6): turns the image's variables into the
# server's configuration files, then `exec`s the server so that it is PID 1
# and receives SIGTERM from `docker stop` / `podman stop` directly.
#
# As upstream's, it edits the INI files in place: a line `[;]key=...`
# (commented or not) becomes `key=value`, or the line is appended. Unlike
# upstream it runs as the unprivileged user the image sets (no KMS_UID /
# runuser dance) and passes the container arguments through unchanged.
#
# Variables (unset or empty = keep the file's value):
#   KMS_MIN_PORT, KMS_MAX_PORT, KMS_MTU      -> BaseRtpEndpoint minPort, maxPort, mtu
#   KMS_EXTERNAL_IPV4, KMS_EXTERNAL_IPV6     -> WebRtcEndpoint externalIPv4/6
#   KMS_EXTERNAL_ADDRESS                     -> alias of the above by address family (6.x images)
#   KMS_NETWORK_INTERFACES                   -> WebRtcEndpoint networkInterfaces
#   KMS_ICE_TCP                              -> WebRtcEndpoint iceTcp
#   KMS_STUN_IP + KMS_STUN_PORT (both)       -> WebRtcEndpoint stunServerAddress, stunServerPort
#   KMS_TURN_URL                             -> WebRtcEndpoint turnURL
#   KMS_PEM_CERTIFICATE_RSA / _ECDSA         -> WebRtcEndpoint pemCertificateRSA / ECDSA
#   OUTPUT_BITRATE                           -> MediaElement encoderBitrate (bps; every encoder,
#                                               video and audio, starts from it)
#   KMS_PORT                                 -> kurento.conf.json websocket port (beyond upstream:
#                                               with --network host; the healthcheck reads it too)
# Paths (for running it outside the image, as the tests do):
#   KMS_CONFIG_DIR (/etc/kurento), KMS_BIN (/usr/bin/kurento-media-server).
set -euo pipefail

conf_dir="${KMS_CONFIG_DIR:-/etc/kurento}"
modules_dir="$conf_dir/modules/kurento"
bin="${KMS_BIN:-/usr/bin/kurento-media-server}"

log() { echo "[entrypoint] $*" >&2; }

# ini_set FILE KEY VALUE: upstream's in-place edit, without sed so that any
# value (TURN URLs carry : @ ? / =) goes in literally.
ini_set() {
  local file="$1" key="$2" value="$3" line found=0
  local -a out=()
  if [[ -f "$file" ]]; then
    while IFS= read -r line || [[ -n "$line" ]]; do
      if [[ "$line" =~ ^[[:space:]]*\;?[[:space:]]*"$key"[[:space:]]*= ]]; then
        # First occurrence takes the value; repeats would override it.
        ((found)) || out+=("$key=$value")
        found=1
      else
        out+=("$line")
      fi
    done <"$file"
  fi
  ((found)) || out+=("$key=$value")
  if ! printf '%s\n' "${out[@]}" >"$file.tmp" || ! mv -f "$file.tmp" "$file"; then
    rm -f "$file.tmp" 2>/dev/null || true
    log "cannot write $file (read-only mount?); the server still reads the KMS_* variables themselves"
    return 0
  fi
  log "$(basename "$file"): $key=$value"
}

set_from() { # VAR FILE KEY
  local v="${!1:-}"
  [[ -n "$v" ]] && ini_set "$modules_dir/$2.conf.ini" "$3" "$v"
  return 0
}

mkdir -p "$modules_dir" 2>/dev/null || true

set_from KMS_MIN_PORT BaseRtpEndpoint minPort
set_from KMS_MAX_PORT BaseRtpEndpoint maxPort
set_from KMS_MTU BaseRtpEndpoint mtu

# 6.x's single external address: by family, unless the specific one is set.
if [[ -n "${KMS_EXTERNAL_ADDRESS:-}" ]]; then
  if [[ "$KMS_EXTERNAL_ADDRESS" == *:* ]]; then
    : "${KMS_EXTERNAL_IPV6:=$KMS_EXTERNAL_ADDRESS}"
  else
    : "${KMS_EXTERNAL_IPV4:=$KMS_EXTERNAL_ADDRESS}"
  fi
fi
for fam in IPV4 IPV6; do
  var="KMS_EXTERNAL_$fam"
  if [[ "${!var:-}" == auto ]]; then
    # Upstream asks public DNS resolvers (dig); this image has no dig and
    # leaves the setting unset, which gathers the host's own addresses.
    log "$var=auto is not supported in this image: set the public address explicitly"
    continue
  fi
  set_from "$var" WebRtcEndpoint "external${fam/IPV/IPv}"
done

set_from KMS_NETWORK_INTERFACES WebRtcEndpoint networkInterfaces
set_from KMS_ICE_TCP WebRtcEndpoint iceTcp
if [[ -n "${KMS_STUN_IP:-}" && -n "${KMS_STUN_PORT:-}" ]]; then
  ini_set "$modules_dir/WebRtcEndpoint.conf.ini" stunServerAddress "$KMS_STUN_IP"
  ini_set "$modules_dir/WebRtcEndpoint.conf.ini" stunServerPort "$KMS_STUN_PORT"
elif [[ -n "${KMS_STUN_IP:-}" ]]; then
  log "KMS_STUN_IP needs KMS_STUN_PORT too (upstream rule): STUN not configured"
fi
set_from KMS_TURN_URL WebRtcEndpoint turnURL
set_from KMS_PEM_CERTIFICATE_RSA WebRtcEndpoint pemCertificateRSA
set_from KMS_PEM_CERTIFICATE_ECDSA WebRtcEndpoint pemCertificateECDSA
set_from OUTPUT_BITRATE MediaElement encoderBitrate

conf_file="${KURENTO_CONF_FILE:-$conf_dir/kurento.conf.json}"
if [[ -n "${KMS_PORT:-}" ]]; then
  if [[ ! "$KMS_PORT" =~ ^[0-9]+$ ]]; then
    log "KMS_PORT must be a number, got '$KMS_PORT'"
    exit 1
  fi
  # Our shipped kurento.conf.json has one "port" key: the WebSocket's.
  if text="$(<"$conf_file")" && [[ "$text" =~ \"port\"[[:space:]]*:[[:space:]]*[0-9]+ ]]; then
    printf '%s\n' "${text/"${BASH_REMATCH[0]}"/\"port\": $KMS_PORT}" >"$conf_file.tmp" && mv -f "$conf_file.tmp" "$conf_file" &&
      log "kurento.conf.json: websocket port $KMS_PORT"
  else
    log "cannot set KMS_PORT: no \"port\" key in $conf_file"
    exit 1
  fi
fi
export KURENTO_CONF_FILE="$conf_file"

# Upstream removes ::1 from /etc/hosts so "localhost" is IPv4; only root can.
if [[ -w /etc/hosts ]] && grep -q '^::1' /etc/hosts 2>/dev/null; then
  hosts="$(grep -v '^::1' /etc/hosts)" && printf '%s\n' "$hosts" >/etc/hosts || true
fi

if [[ -z "${GST_DEBUG:-}" ]]; then
  export GST_DEBUG="2,Kurento*:4,kms*:4,sdp*:4,webrtc*:4,*rtpendpoint:4,rtp*handler:4,rtpsynchronizer:4,agnosticbin:4"
fi
if [[ ! -t 1 ]]; then
  export GST_DEBUG_NO_COLOR=1
fi

exec "$bin" "$@"
