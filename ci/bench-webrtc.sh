#!/usr/bin/env bash
# WebRTC benchmarks of docs/benchmarks.md (## WebRTC): setup latency,
# loopback capacity ramp, forced VP8→H.264 transcoding ramp. Not a test:
# prints Markdown table rows (and JSON lines) to paste into the doc.
#
#   ci/bench-webrtc.sh [latency|ramp|transcode|transcode-h264|browser|all]
#
# transcode: VP8 sent, H.264 received; transcode-h264: H.264 sent, VP8
# received.
#
# Env: STEPS (loopback ramp, default 1,8,16,32,48), TSTEPS (transcoding,
# default 1,2,4,8), RUNS (latency, default 20), WINDOW (seconds measured
# per step, default 10). Release build; ICE on 127.0.0.1 only (the server
# gathers on `lo`, the generator adds 127.0.0.1 only).
# For A/B runs (docs/benchmarks.md "Metrics overhead"): KMS_BENCH_SERVER (a
# server binary to measure instead of this tree's release build),
# KMS_BENCH_SCRAPE=1 (GET /metrics every second during the run, as a
# Prometheus would; each scrape must answer 200).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
what="${1:-all}"

cd "$repo"
if [[ -n "${KMS_BENCH_SERVER:-}" ]]; then
  server="$KMS_BENCH_SERVER"
else
  cargo build --release -q -p kurento-media-server
  server="$target/release/kurento-media-server"
fi
cargo build --release -q -p kms-elements --example webrtc_loadgen
loadgen="$target/release/examples/webrtc_loadgen"

# The pre-encoded media the generator replays: 20 s of scrolling 640x480@30
# VP8 (~500 kbps) and Opus stereo.
media="$target/bench-webrtc-media.webm"
if [[ ! -s "$media" ]]; then
  gst-launch-1.0 -q -e \
    videotestsrc pattern=smpte horizontal-speed=4 num-buffers=600 ! video/x-raw,width=640,height=480,framerate=30/1 \
    ! vp8enc deadline=1 cpu-used=4 target-bitrate=500000 keyframe-max-dist=300 end-usage=cbr ! webmmux name=m \
    ! filesink location="$media" \
    audiotestsrc wave=sine num-buffers=1000 samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=2 \
    ! opusenc bitrate=48000 ! m.
fi

# The same picture and sound with H.264 video (constrained baseline, as
# browsers send it), for the H.264→VP8 transcoding direction.
media_h264="$target/bench-webrtc-media-h264.mkv"
if [[ ! -s "$media_h264" ]]; then
  gst-launch-1.0 -q -e \
    videotestsrc pattern=smpte horizontal-speed=4 num-buffers=600 ! video/x-raw,width=640,height=480,framerate=30/1 \
    ! x264enc speed-preset=veryfast tune=zerolatency bitrate=500 key-int-max=300 \
    ! video/x-h264,profile=constrained-baseline ! h264parse ! matroskamux name=m \
    ! filesink location="$media_h264" \
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
scraper=""
trap 'kill $pid $scraper 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$conf"' EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
echo "# server: $server ($("$server" --version 2>&1 | head -n 1))"
if [[ "${KMS_BENCH_SCRAPE:-0}" == 1 ]]; then
  while :; do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$port/metrics" >>"$conf/scrapes"
    sleep 1
  done &
  scraper=$!
fi
scrape_report() {
  [[ -n "$scraper" ]] || return 0
  kill "$scraper" 2>/dev/null || true
  wait "$scraper" 2>/dev/null || true
  scraper=""
  local n ok
  n=$(wc -l <"$conf/scrapes")
  ok=$(grep -c '^200 ' "$conf/scrapes" || true)
  echo "# scrapes of /metrics: $n, HTTP 200: $ok, mean $(awk '{ s += $2 } END { if (NR) printf "%.1f", s / NR * 1000 }' "$conf/scrapes") ms"
  if ((n == 0 || ok != n)); then
    echo "FAIL: scraping /metrics (KMS_BENCH_SCRAPE=1) did not answer 200 every time" >&2
    return 1
  fi
}

run() { KMS_ICE_LOOPBACK_ONLY=1 "$loadgen" --url "ws://127.0.0.1:$port/kurento" --pid "$pid" --file "${FILE:-$media}" \
  --window "${WINDOW:-10}" "$@"; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, GStreamer $(gst-launch-1.0 --version | sed -n 2p | awk '{print $2}')"
case "$what" in
  latency) run latency "${RUNS:-20}" ;;
  ramp) run ramp "${STEPS:-1,8,16,32,48}" ;;
  transcode) run transcode "${TSTEPS:-1,2,4,8}" ;;
  transcode-h264) FILE="$media_h264" run transcode "${TSTEPS:-1,2,4,8}" ;;
  browser) KMS_BIN="$server" tests/browser/run.sh --bench-latency "${RUNS:-20}" ;;
  all)
    run latency "${RUNS:-20}"
    echo
    run ramp "${STEPS:-1,8,16,32,48}"
    echo
    run transcode "${TSTEPS:-1,2,4,8}"
    echo
    FILE="$media_h264" run transcode "${TSTEPS:-1,2,4,8}"
    echo
    KMS_BIN="$server" tests/browser/run.sh --bench-latency "${RUNS:-20}"
    ;;
esac
scrape_report
