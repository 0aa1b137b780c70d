#!/usr/bin/env bash
# Build-and-run loop (the Rust counterpart of KMS's build-run.sh, spec §11.7):
# installs missing system packages, builds, then runs the server on
# ws://0.0.0.0:8888/kurento with the repository's configuration.
#
#   ci/kms-build-run.sh [--build-only] [--release] [--gdb] [--valgrind-memcheck]
#                       [--address-sanitizer] [--docker] [-- server args...]
#
# --docker: packages the freshly built binary into the container image
# (docker/Dockerfile, target `prebuilt`; docker when its daemon answers, else podman)
# and runs it on the host network with the KMS_* / GST_DEBUG variables of
# this shell. BASE_IMAGE overrides the base (default: localhost/debian:bookworm
# when ci/test-docker.sh made it, else debian:bookworm-slim).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
build_only=0
docker=0
wrapper=()
cargo_flags=()
server_args=()
while (($#)); do
  case "$1" in
    --build-only) build_only=1 ;;
    --docker) docker=1 ;;
    --release) profile=release ;;
    --gdb) wrapper=(gdb -ex run --args) ;;
    --valgrind-memcheck) profile=release; wrapper=(valgrind --tool=memcheck --leak-check=full) ;;
    --valgrind-massif) profile=release; wrapper=(valgrind --tool=massif) ;;
    --valgrind-callgrind) profile=release; wrapper=(valgrind --tool=callgrind) ;;
    --address-sanitizer)
      # Needs a nightly toolchain; honoured when one is installed.
      export RUSTFLAGS="${RUSTFLAGS:-} -Zsanitizer=address"; cargo_flags+=(-Zbuild-std --target x86_64-unknown-linux-gnu) ;;
    --) shift; server_args+=("$@"); break ;;
    *) server_args+=("$1") ;;
  esac
  shift
done

ci/setup.sh

if [[ $profile == release ]]; then cargo_flags+=(--release); fi
cargo build -p kurento-media-server "${cargo_flags[@]}"
[[ $build_only == 1 ]] && exit 0

bin=target/$profile/kurento-media-server

if [[ $docker == 1 ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    engine=(docker); build_flags=()
  else
    engine=(podman --runtime runc); build_flags=(--format docker)
  fi
  base="${BASE_IMAGE:-}"
  if [[ -z "$base" ]]; then
    base=debian:bookworm-slim
    "${engine[@]}" image inspect localhost/debian:bookworm >/dev/null 2>&1 && base=localhost/debian:bookworm
  fi
  mkdir -p docker/prebuilt
  strip -o docker/prebuilt/kurento-media-server "$bin"
  "${engine[@]}" build --network host "${build_flags[@]}" -f docker/Dockerfile --target prebuilt \
    --build-arg BASE_IMAGE="$base" -t localhost/kurento-rs:dev .
  run_env=()
  for v in GST_DEBUG OUTPUT_BITRATE $(env | grep -o '^KMS_[A-Z0-9_]*' || true); do
    [[ -n "${!v:-}" ]] && run_env+=(-e "$v=${!v}")
  done
  tty=(); [[ -t 0 ]] && tty=(-it)
  exec "${engine[@]}" run --rm "${tty[@]}" --network host "${run_env[@]}" localhost/kurento-rs:dev "${server_args[@]}"
fi
# A clean environment, as upstream's script does, with the useful variables.
envs=(
  "PATH=$PATH" "HOME=${HOME:-/root}"
  "GST_DEBUG=${GST_DEBUG:-2,Kurento*:4,kms*:4,sdp*:4,webrtc*:4,*rtpendpoint:4,rtp*handler:4,rtpsynchronizer:4,agnosticbin:4}"
  "KURENTO_CONF_FILE=$PWD/kurento-media-server/config/kurento.conf.json"
  "KURENTO_MODULES_CONFIG_PATH=$PWD/kurento-media-server/config/modules${KURENTO_MODULES_CONFIG_PATH:+:$KURENTO_MODULES_CONFIG_PATH}"
)
for v in GST_DEBUG_DUMP_DOT_DIR G_DEBUG G_MESSAGES_DEBUG GST_PLUGIN_PATH KMS_LOG RUST_LOG RUST_BACKTRACE GST_DEBUG_NO_COLOR; do
  [[ -n "${!v:-}" ]] && envs+=("$v=${!v}")
done
for v in $(env | grep -o '^KMS_[A-Z0-9_]*' || true); do envs+=("$v=${!v}"); done
ulimit -n 65536 2>/dev/null || true
ulimit -c unlimited 2>/dev/null || true
exec env --ignore-environment "${envs[@]}" "${wrapper[@]}" "$bin" "${server_args[@]}"
