#!/usr/bin/env bash
# Recording benchmark of docs/benchmarks.md (## Recording): n WebRTC
# sessions (VP8 640x480@30 ~500 kbps + Opus, replayed by the load generator
# without encoding) each recorded by a WEBM RecorderEndpoint. Per step: the
# server's CPU with the streams alone and with the recordings (the
# difference per recording: the recorder must not decode), RSS and threads
# per recording, stopAndWait times, and how many files ffprobe finds
# finalized (duration in the header). Not a test: prints Markdown rows.
#
#   ci/bench-record.sh            (STEPS default 1,20; WINDOW default 10 s)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"

cd "$repo"
cargo build --release -q -p kurento-media-server
cargo build --release -q -p kms-elements --example webrtc_loadgen
server="$target/release/kurento-media-server"
loadgen="$target/release/examples/webrtc_loadgen"

# The same pre-encoded media as ci/bench-webrtc.sh.
media="$target/bench-webrtc-media.webm"
if [[ ! -s "$media" ]]; then
  gst-launch-1.0 -q -e \
    videotestsrc pattern=smpte horizontal-speed=4 num-buffers=600 ! video/x-raw,width=640,height=480,framerate=30/1 \
    ! vp8enc deadline=1 cpu-used=4 target-bitrate=500000 keyframe-max-dist=300 end-usage=cbr ! webmmux name=m \
    ! filesink location="$media" \
    audiotestsrc wave=sine num-buffers=1000 samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=2 \
    ! opusenc bitrate=48000 ! m.
fi

conf="$(mktemp -d "${TMPDIR:-/tmp}/kms-bench-rec.XXXXXX")"
mkdir -p "$conf/modules/kurento" "$conf/media"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$conf/kurento.conf.json" <<JSON
{"mediaServer": {"resources": {"garbageCollectorPeriod": 240, "mediaRoots": ["$conf/media"]},
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

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, GStreamer $(gst-launch-1.0 --version | sed -n 2p | awk '{print $2}')"
KMS_ICE_LOOPBACK_ONLY=1 "$loadgen" --url "ws://127.0.0.1:$port/kurento" --pid "$pid" --file "$media" \
  --window "${WINDOW:-10}" --dir "$conf/media" record "${STEPS:-1,20}"
