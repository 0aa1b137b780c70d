#!/usr/bin/env bash
# Installs every system dependency the build and the tests need on a fresh
# Debian 12 machine. Idempotent: packages already present are skipped, so the
# build-and-run loop can call it on every start at almost no cost.
set -euo pipefail

# Runtime + build: GStreamer 1.22 with the plugins our elements use.
# gstreamer1.0-nice is required by webrtcbin (without it linking fails with a
# misleading "can't handle caps" error). FaceOverlayFilter: facedetect from
# gstreamer1.0-opencv with the Haar cascades of opencv-data.
BUILD_PKGS=(
  build-essential pkg-config libssl-dev
  libglib2.0-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-nice
  gstreamer1.0-opencv opencv-data
  # GStreamerFilter's text overlays (timeoverlay, textoverlay, clockoverlay: pango).
  gstreamer1.0-x
  # PlateDetectorFilter reads plates with the tesseract command (English data).
  tesseract-ocr tesseract-ocr-eng
  curl ca-certificates procps
)
# Tests only: the browser, file inspection and node for the official clients.
# The loss test: a network namespace with nftables drops; the player tests:
# an RTSP server (gst-rtsp-server through python3-gi); the ZBarFilter test:
# QR codes made by qrencode; /metrics: a Prometheus text parser
# (prometheus_client) and promtool (prometheus). The container test
# (ci/test-docker.sh): podman with runc, debootstrap for the local base image;
# coturn's turnserver as the STUN server KMS_EXTERNAL_IPV4=auto asks.
# The Kubernetes manifest check (ci/test-deploy.sh): python3-venv for its venv.
# The cluster suite (tests/cluster): redis-server (with redis-cli).
TEST_PKGS=(chromium ffmpeg iproute2 nftables nodejs openssl tcpdump python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp
  qrencode python3-prometheus-client prometheus podman runc debootstrap coturn python3-venv redis-server)

want=("${BUILD_PKGS[@]}")
if [[ "${1:-}" == "--with-tests" ]]; then
  want+=("${TEST_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
  # nodejs may come from a non-Debian install already on PATH.
  if [[ "$p" == nodejs ]] && command -v node >/dev/null 2>&1; then continue; fi
  if [[ "$p" == chromium ]] && [[ -x /usr/bin/chromium ]]; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "ci/setup.sh: installing: ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
