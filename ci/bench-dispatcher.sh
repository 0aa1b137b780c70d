#!/usr/bin/env bash
# DispatcherOneToMany benchmark of docs/benchmarks.md (## DispatcherOneToMany):
# one sending WebRTC session broadcast to N receiving sessions through the
# hub (a HubPort + WebRtcEndpoint per viewer), then the same viewers fed by
# plain `connect` from the source endpoint (the one-to-many baseline).
# Viewers are webrtcbin sessions of the load generator
# (kms-elements/examples/webrtc_loadgen.rs: pre-encoded VP8 + Opus sent,
# received RTP counted, nothing decoded), not browsers: 20 Chromium tabs
# do not fit next to the server on 2 cores. Not a test: prints Markdown
# table rows (and JSON lines) to paste into the doc.
#
#   ci/bench-dispatcher.sh [hub|direct|all]
#
# Env: STEPS (viewers, default 1,5,10,20), WINDOW (seconds measured per
# step, default 10). Release build; ICE on 127.0.0.1 only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
what="${1:-all}"

cd "$repo"
if [[ "$what" == all ]]; then
  # One server per mode: the baseline's RSS is not the hub run's leftovers.
  "$0" hub
  echo
  exec "$0" direct
fi
cargo build --release -q -p kurento-media-server
cargo build --release -q -p kms-elements --example webrtc_loadgen
server="$target/release/kurento-media-server"
loadgen="$target/release/examples/webrtc_loadgen"

# The pre-encoded media the generator replays (as ci/bench-webrtc.sh):
# 20 s of scrolling 640x480@30 VP8 (~500 kbps) and Opus stereo.
media="$target/bench-webrtc-media.webm"
if [[ ! -s "$media" ]]; then
  gst-launch-1.0 -q -e \
    videotestsrc pattern=smpte horizontal-speed=4 num-buffers=600 ! video/x-raw,width=640,height=480,framerate=30/1 \
    ! vp8enc deadline=1 cpu-used=4 target-bitrate=500000 keyframe-max-dist=300 end-usage=cbr ! webmmux name=m \
    ! filesink location="$media" \
    audiotestsrc wave=sine num-buffers=1000 samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=2 \
    ! opusenc bitrate=48000 ! m.
fi

conf="$(mktemp -d "${TMPDIR:-/tmp}/kms-bench.XXXXXX")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$conf/modules/kurento"
cat >"$conf/kurento.conf.json" <<JSON
{"mediaServer": {"resources": {"garbageCollectorPeriod": 240},
 "net": {"websocket": {"port": $port, "path": "kurento", "address": "127.0.0.1"}}}}
JSON
printf 'networkInterfaces=lo\n' >"$conf/modules/kurento/WebRtcEndpoint.conf.ini"

KMS_LOG=warn "$server" --conf-file "$conf/kurento.conf.json" >"$conf/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$conf"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

run() { KMS_ICE_LOOPBACK_ONLY=1 "$loadgen" --url "ws://127.0.0.1:$port/kurento" --pid "$pid" --file "$media" \
  --window "${WINDOW:-10}" one2many "${STEPS:-1,5,10,20}" "$@"; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, GStreamer $(gst-launch-1.0 --version | sed -n 2p | awk '{print $2}')"
case "$what" in
  hub) run ;;
  direct) run --direct ;;
  *) echo "usage: $0 [hub|direct|all]" >&2; exit 2 ;;
esac
