#!/usr/bin/env bash
# Container entrypoint (spec §11.6): turns the image's variables into the
# server's configuration files, then `exec`s the server so that it is PID 1
# and receives SIGTERM from `docker stop` / `podman stop` directly.
#
# As upstream's, it edits the INI files in place: a line `[;]key=...`
# (commented or not) becomes `key=value`, or the line is appended. Unlike
# upstream it runs as the unprivileged user the image sets and passes the
# container arguments through unchanged; KMS_UID is honoured when the
# container is started as root (below).
#
# Variables (unset or empty = keep the file's value):
#   KMS_MIN_PORT, KMS_MAX_PORT, KMS_MTU      -> BaseRtpEndpoint minPort, maxPort, mtu
#   KMS_EXTERNAL_IPV4, KMS_EXTERNAL_IPV6     -> WebRtcEndpoint externalIPv4/6; `auto` discovers
#                                               the public address (below) or leaves it unset
#   KMS_EXTERNAL_IP_DNS (1)                  -> 0: `auto` never asks public DNS resolvers
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
#   KMS_UID, KMS_GID (= KMS_UID)             -> started as root: the server runs with this uid/gid
#                                               (the media directory and GStreamer's registry are
#                                               handed to it); as another user: refused unless equal
# Paths (for running it outside the image, as the tests do):
#   KMS_CONFIG_DIR (/etc/kurento), KMS_BIN (/usr/bin/kurento-media-server),
#   KMS_MEDIA_DIR (/var/lib/kurento; handed to KMS_UID).
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

# ------------------------------------------------------- KMS_EXTERNAL_*=auto
# Upstream (getmyip.sh) asks public DNS resolvers that answer with the
# asker's address. A container that reaches a STUN server but not the
# internet (a private deployment, a test host) learns nothing that way, so
# the STUN server of KMS_STUN_IP/KMS_STUN_PORT is asked first: the address
# it saw is exactly what ICE will advertise as server-reflexive.

# ipv6_text G1..G8: the eight 16-bit groups (hex, no leading zeros) in
# RFC 5952 form (longest run of two or more zero groups as "::").
ipv6_text() {
  local -a g=("$@")
  local i j best=-1 bestlen=1 left right
  for ((i = 0; i < 8; i++)); do
    [[ "${g[i]}" == 0 ]] || continue
    for ((j = i; j < 8; j++)); do [[ "${g[j]}" == 0 ]] || break; done
    if ((j - i > bestlen)); then best=$i bestlen=$((j - i)); fi
  done
  if ((best < 0)); then
    (IFS=:; echo "${g[*]}")
    return
  fi
  left="$(IFS=:; echo "${g[*]:0:best}")"
  right="$(IFS=:; echo "${g[*]:best+bestlen}")"
  echo "$left::$right"
}

# stun_parse HEX TID: the mapped address in a STUN Binding success response
# (RFC 5389) given as a hex string; TID is the request's transaction id.
# XOR-MAPPED-ADDRESS (0x0020, or 0x8020 of the pre-RFC drafts) is preferred
# to the plain MAPPED-ADDRESS (0x0001), which NAT "helpers" may rewrite.
stun_parse() {
  local h="$1" tid="$2" off end type alen val xor fam a i g key plain="" xored=""
  local -a groups
  [[ "${h:0:4}" == 0101 && "${h:8:8}" == 2112a442 && "${h:16:24}" == "$tid" ]] || return 1
  end=$((40 + 2 * 16#${h:4:4}))
  ((end <= ${#h})) || return 1
  for ((off = 40; off + 8 <= end; off += 8 + 2 * ((alen + 3) / 4 * 4))); do
    type="${h:off:4}" alen=$((16#${h:off+4:4}))
    val="${h:off+8:2*alen}"
    case "$type" in
      0020 | 8020) xor=1 ;;
      0001) xor=0 ;;
      *) continue ;;
    esac
    fam="${val:2:2}"
    if [[ "$fam" == 01 && ${#val} -ge 16 ]]; then
      a=$((16#${val:8:8}))
      ((xor)) && a=$((a ^ 0x2112a442))
      a="$((a >> 24 & 255)).$((a >> 16 & 255)).$((a >> 8 & 255)).$((a & 255))"
    elif [[ "$fam" == 02 && ${#val} -ge 40 ]]; then
      key="2112a442$tid" groups=()
      for ((i = 0; i < 8; i++)); do
        g=$((16#${val:8+4*i:4}))
        ((xor)) && g=$((g ^ 16#${key:4*i:4}))
        groups+=("$(printf '%x' "$g")")
      done
      a="$(ipv6_text "${groups[@]}")"
    else
      continue
    fi
    if ((xor)); then xored="$a"; else plain="$a"; fi
  done
  a="${xored:-$plain}"
  [[ -n "$a" ]] && echo "$a"
}

# stun_mapped_address HOST PORT: one Binding request over UDP (bash's
# /dev/udp and coreutils; the image needs no STUN client), three tries of
# 1 s. The transaction id is alphanumeric so that printf writes the 20
# bytes as one datagram (no newline byte to flush on).
stun_mapped_address() {
  local host="$1" port="$2" fd tid hex="" try
  tid="$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 12 | od -An -v -tx1 | tr -d ' \n')"
  for try in 1 2 3; do
    exec {fd}<>"/dev/udp/$host/$port" || return 1
    printf "$(sed 's/../\\x&/g' <<<"000100002112a442$tid")" >&"$fd" || true
    hex="$(timeout 1 dd bs=2048 count=1 status=none <&"$fd" 2>/dev/null | od -An -v -tx1 | tr -d ' \n')" || true
    exec {fd}>&-
    [[ -n "$hex" ]] && break
  done
  [[ -n "$hex" ]] && stun_parse "$hex" "$tid"
}

# dns_public_ip 4|6: upstream's getmyip.sh queries (OpenDNS, Google,
# Cloudflare, Akamai), first plausible answer wins; each try is bounded.
dns_public_ip() {
  local fam="$1" q out
  local -a queries
  if [[ "$fam" == 4 ]]; then
    queries=("@resolver1.opendns.com myip.opendns.com A"
      "@ns1.google.com o-o.myaddr.l.google.com TXT"
      "@1.1.1.1 whoami.cloudflare TXT CH"
      "@ns1-1.akamaitech.net whoami.akamai.net A")
  else
    queries=("@resolver1.ipv6-sandbox.opendns.com myip.opendns.com AAAA"
      "@ns1.google.com o-o.myaddr.l.google.com TXT"
      "@2606:4700:4700::1111 whoami.cloudflare TXT CH"
      "@ns1-1.akamaitech.net whoami.akamai.net AAAA")
  fi
  for q in "${queries[@]}"; do
    # shellcheck disable=SC2086 # the query is words on purpose
    out="$(timeout 4 dig -"$fam" +short +time=1 +tries=1 $q 2>/dev/null | tr -d '"' | head -n 1)" || true
    if [[ "$fam" == 4 && "$out" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] ||
      [[ "$fam" == 6 && "$out" == *:* && "$out" =~ ^[0-9a-fA-F:]+$ ]]; then
      log "public IPv$fam from DNS ($q): $out"
      echo "$out"
      return 0
    fi
  done
  log "public IPv$fam: no answer from the public DNS resolvers"
  return 1
}

# public_ip 4|6: the STUN answer (stun_seen, asked once for both families)
# when it is of that family, else DNS.
public_ip() {
  local fam="$1"
  if [[ -n "$stun_seen" ]]; then
    if [[ ("$fam" == 4 && "$stun_seen" != *:*) || ("$fam" == 6 && "$stun_seen" == *:*) ]]; then
      log "public IPv$fam from STUN $KMS_STUN_IP:$KMS_STUN_PORT: $stun_seen"
      echo "$stun_seen"
      return 0
    fi
    log "public IPv$fam: STUN $KMS_STUN_IP:$KMS_STUN_PORT answered $stun_seen (other family)"
  fi
  if [[ "${KMS_EXTERNAL_IP_DNS:-1}" == 0 ]]; then
    log "public IPv$fam: DNS discovery disabled (KMS_EXTERNAL_IP_DNS=0)"
    return 1
  fi
  if ! command -v dig >/dev/null; then
    log "public IPv$fam: no dig (bind9-dnsutils) for the DNS discovery"
    return 1
  fi
  dns_public_ip "$fam"
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
stun_seen=""
if [[ "${KMS_EXTERNAL_IPV4:-}" == auto || "${KMS_EXTERNAL_IPV6:-}" == auto ]] &&
  [[ -n "${KMS_STUN_IP:-}" && -n "${KMS_STUN_PORT:-}" ]]; then
  stun_seen="$(stun_mapped_address "$KMS_STUN_IP" "$KMS_STUN_PORT" 2>/dev/null)" ||
    log "public address: no answer from STUN $KMS_STUN_IP:$KMS_STUN_PORT"
fi
for fam in IPV4 IPV6; do
  var="KMS_EXTERNAL_$fam"
  if [[ "${!var:-}" == auto ]]; then
    if addr="$(public_ip "${fam#IPV}")"; then
      printf -v "$var" '%s' "$addr"
    else
      # Upstream's rule: unset, so ICE offers the host's own addresses.
      log "WARNING: $var=auto: no public IPv${fam#IPV} address found (STUN and DNS both failed); externalIPv${fam#IPV} left unset"
      continue
    fi
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

# KMS_UID (spec §11.6 step 5): upstream's image runs as root and switches to
# KMS_UID, usually to match the owner of a host directory mounted as the
# media volume. This image already runs as the unprivileged `kurento`
# user, so KMS_UID takes effect when the container is started as root
# (`--user root`): the entrypoint edits the configuration as root, hands
# the media directory (top level only; a large volume is not walked) and
# GStreamer's registry cache to KMS_UID:KMS_GID, then execs the server
# under that identity with setpriv (util-linux: no passwd edit, still
# PID 1). Started as any other uid the switch is impossible, and a
# requested identity that cannot be honoured is an error, not a warning.
if [[ -n "${KMS_UID:-}" && "$KMS_UID" != "$(id -u)" ]]; then
  gid="${KMS_GID:-$KMS_UID}"
  if [[ ! "$KMS_UID" =~ ^[0-9]+$ || ! "$gid" =~ ^[0-9]+$ ]]; then
    log "KMS_UID/KMS_GID must be numeric, got '$KMS_UID'/'$gid'"
    exit 1
  fi
  if [[ "$(id -u)" != 0 ]]; then
    log "KMS_UID=$KMS_UID but running as uid $(id -u), not root: start the container with --user root to switch"
    exit 1
  fi
  media_dir="${KMS_MEDIA_DIR:-/var/lib/kurento}"
  owned=("$media_dir")
  # The image's registry (GST_REGISTRY) stays usable and updatable.
  [[ -n "${GST_REGISTRY:-}" ]] && owned+=("$(dirname "$GST_REGISTRY")" "$GST_REGISTRY")
  for d in "${owned[@]}"; do
    if [[ -e "$d" ]]; then
      chown "$KMS_UID:$gid" "$d" || log "cannot chown $d to $KMS_UID:$gid"
    fi
  done
  log "running the server as uid $KMS_UID gid $gid (KMS_UID)"
  export HOME="$media_dir"
  exec setpriv --reuid="$KMS_UID" --regid="$gid" --clear-groups -- "$bin" "$@"
fi

exec "$bin" "$@"
