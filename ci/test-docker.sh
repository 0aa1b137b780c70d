#!/usr/bin/env bash
# The container image, really built and run (issue 11, spec §11.6), with
# podman (Debian 12 has no Docker engine here; podman reads the same
# Dockerfile). Steps:
#   1. a local Debian 12 base image (no registry is reachable): debootstrap
#      --variant=minbase, slimmed like debian:bookworm-slim, `podman import`;
#      kept in podman's storage, so it is made once per machine;
#   2. the `prebuilt` target of docker/Dockerfile around the server CI has
#      already built (target/debug, or $KMS_DOCKER_BIN), stripped; the
#      runtime layers (apt) are cached by podman between runs;
#   3. the container run with KMS_STUN_IP/KMS_TURN_URL/OUTPUT_BITRATE, host
#      network, a free port (KMS_PORT): image size and start-to-ready time;
#   4. the image's HEALTHCHECK healthy while it runs, unhealthy while the
#      server is SIGSTOPped, healthy again after SIGCONT;
#   5. tests/browser/container/container.test.js: the official
#      kurento-client reads the variables back from a WebRtcEndpoint,
#      a browser loopback through the container, a recording in the volume
#      whose H.264 encoder runs at OUTPUT_BITRATE;
#   6. SIGTERM (podman stop) -> exit code 0 before the stop timeout;
#   7. KMS_EXTERNAL_IPV4=auto: with a STUN server (coturn, on 127.0.0.1) the
#      address it saw; with no network at all (--network none) unset, with
#      a warning, and the server still starts;
#   8. KMS_UID: started as root the server runs with that uid and owns the
#      media directory; started as the image's user the entrypoint refuses.
#
#   ci/test-docker.sh [--keep] [--from-source]
#     --keep         leave the image and the test container, remove nothing
#     --from-source  build the `runtime` target instead of `prebuilt`: the
#                    server compiled in the image's `builder` stage (rustup +
#                    a release build; crates and target dir in podman cache
#                    mounts, so a rebuild is incremental). The host's local
#                    CAs (/usr/local/share/ca-certificates/*.crt) are copied
#                    to docker/extra-ca/ for the builder: behind a
#                    TLS-inspecting proxy rustup and cargo need its CA.
#                    CI keeps the prebuilt target (a cold build from source
#                    takes ~7.5 min on 2 cores; docs/benchmarks.md).
# Env: KMS_DOCKER_BIN (binary to package), KMS_DOCKER_IMAGE (tag).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

keep=0
from_source=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    --from-source) from_source=1 ;;
    *) echo "usage: ci/test-docker.sh [--keep] [--from-source]" >&2; exit 2 ;;
  esac
done

if ((from_source)); then
  image="${KMS_DOCKER_IMAGE:-localhost/kurento-rs:source}"
else
  image="${KMS_DOCKER_IMAGE:-localhost/kurento-rs:test}"
fi
base=localhost/debian:bookworm
name="kms-docker-test-$$"
t0=$(date +%s)
podman=(podman --runtime runc --cgroup-manager cgroupfs)

# debootstrap and rootful podman (host network, runc) need root.
if [[ $(id -u) -ne 0 ]]; then
  echo "ci/test-docker.sh: needs root (debootstrap, podman with --network host)" >&2
  exit 1
fi
for tool in podman runc debootstrap turnserver; do
  command -v "$tool" >/dev/null || { echo "ci/test-docker.sh: $tool missing (ci/setup.sh --with-tests installs it)" >&2; exit 1; }
done

# podman as root in this kind of VM/container needs these (found by trying:
# the default ulimits cannot be applied, and there is no systemd to manage
# cgroups).
if [[ ! -f /etc/containers/containers.conf ]]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' \
    >/etc/containers/containers.conf
fi

# ------------------------------------------------------------------ base image
if ! "${podman[@]}" image exists "$base"; then
  echo "== docker: base image $base (debootstrap --variant=minbase bookworm)"
  root="$(mktemp -d /var/tmp/kms-debootstrap.XXXXXX)"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/tmp/kms-debootstrap.log 2>&1 ||
    { tail -20 /tmp/kms-debootstrap.log; exit 1; }
  # What debian:bookworm-slim does (debuerreotype --slimify): no docs, man
  # pages or translations, now or in later apt installs; no package caches.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
SLIM
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  tar -C "$root" -c . | "${podman[@]}" import - "$base" >/dev/null
  rm -rf "$root"
fi

# ---------------------------------------------------------------------- image
tb=$(date +%s)
if ((from_source)); then
  shopt -s nullglob
  for ca in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
    cp "$ca" docker/extra-ca/ && echo "builder trusts the host's local CA $(basename "$ca")"
  done
  shopt -u nullglob
  echo "== docker: build $image (target runtime: the server built from source in the image)"
  "${podman[@]}" build --network host --format docker -f docker/Dockerfile --target runtime \
    --build-arg BASE_IMAGE="$base" -t "$image" . >/tmp/kms-docker-build.log 2>&1 ||
    { tail -40 /tmp/kms-docker-build.log; exit 1; }
  grep -E '^ *Finished `release`' /tmp/kms-docker-build.log || echo "(cargo build: cached layer)"
else
  bin="${KMS_DOCKER_BIN:-$repo/target/debug/kurento-media-server}"
  if [[ ! -x "$bin" ]]; then
    cargo build -p kurento-media-server
  fi
  mkdir -p docker/prebuilt
  strip -o docker/prebuilt/kurento-media-server "$bin"
  echo "== docker: build $image (target prebuilt, $(basename "$(dirname "$bin")") binary, stripped)"
  "${podman[@]}" build --network host --format docker -f docker/Dockerfile --target prebuilt \
    --build-arg BASE_IMAGE="$base" -t "$image" . >/tmp/kms-docker-build.log 2>&1 ||
    { tail -40 /tmp/kms-docker-build.log; exit 1; }
fi
size=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
echo "image $image: $((size / 1000000)) MB, built in $(($(date +%s) - tb)) s"
if ((size > 250000000)); then
  echo "FAIL: the image exceeds 250 MB" >&2
  exit 1
fi

# ------------------------------------------------------------------------ run
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
stun_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
turn_pid=""
cleanup() {
  [[ -z "$turn_pid" ]] || kill "$turn_pid" 2>/dev/null || true
  ((keep)) && return
  "${podman[@]}" rm -f -v -t 0 "$name" "$name-none" "$name-uid" >/dev/null 2>&1 || true
  "${podman[@]}" volume rm -f "$name-media" >/dev/null 2>&1 || true
}
trap cleanup EXIT
export DOCKER_TEST_STUN_IP=127.0.0.1 DOCKER_TEST_STUN_PORT=$stun_port
export DOCKER_TEST_TURN_URL="kurento:s3cret@127.0.0.1:$stun_port?transport=udp"
export DOCKER_TEST_BITRATE=456000
ts=$(date +%s%N)
"${podman[@]}" run -d --name "$name" --network host \
  -v "$name-media:/var/lib/kurento" \
  -e KMS_PORT="$port" \
  -e KMS_STUN_IP="$DOCKER_TEST_STUN_IP" -e KMS_STUN_PORT="$DOCKER_TEST_STUN_PORT" \
  -e KMS_TURN_URL="$DOCKER_TEST_TURN_URL" \
  -e OUTPUT_BITRATE="$DOCKER_TEST_BITRATE" \
  -e KMS_MIN_PORT=40000 -e KMS_MAX_PORT=40999 \
  "$image" >/dev/null 2>/tmp/kms-docker-run.log ||
  { cat /tmp/kms-docker-run.log; exit 1; }
# (podman logs, on stderr, that it cannot register systemd timers for the
# HEALTHCHECK: there is no systemd here; `podman healthcheck run` below
# runs the check itself.)
ready=""
for _ in $(seq 1 300); do
  if KMS_PORT=$port KMS_HEALTHCHECK_TIMEOUT=1 docker/healthchecker.sh 2>/dev/null; then
    ready=$((($(date +%s%N) - ts) / 1000000))
    break
  fi
  sleep 0.05
done
if [[ -z "$ready" ]]; then
  "${podman[@]}" logs "$name" | tail -30
  echo "FAIL: the container never answered a ping" >&2
  exit 1
fi
echo "start-to-ready (podman run -> first pong): $ready ms"
"${podman[@]}" logs "$name" 2>&1 | grep '^\[entrypoint\]' || true

# ---------------------------------------------------------------- healthcheck
echo "== docker: HEALTHCHECK"
"${podman[@]}" healthcheck run "$name" && echo "healthy while running"
pid=$("${podman[@]}" inspect --format '{{.State.Pid}}' "$name")
kill -STOP "$pid"
if "${podman[@]}" healthcheck run "$name" >/dev/null 2>&1; then
  kill -CONT "$pid"
  echo "FAIL: healthy while the server is stopped (SIGSTOP)" >&2
  exit 1
fi
echo "unhealthy while SIGSTOPped"
kill -CONT "$pid"
"${podman[@]}" healthcheck run "$name" && echo "healthy again after SIGCONT"

# ------------------------------------------------------------ kurento-client
echo "== docker: official kurento-client and Chromium against the container"
(
  cd tests/browser
  if [[ ! -d node_modules/kurento-utils || ! -d node_modules/playwright-core ]]; then
    npm ci --ignore-scripts --no-audit --no-fund >/dev/null
  fi
  mkdir -p build
  node_modules/.bin/esbuild lib/browser-entry.js --bundle --format=iife --platform=browser \
    --outfile=build/bundle.js --log-level=warning
  KMS_URL="ws://127.0.0.1:$port/kurento" KMS_CONTAINER="$name" \
    node --test --test-timeout=120000 container/container.test.js
) || {
  "${podman[@]}" logs "$name" 2>&1 | grep -v ' INFO \| DEBUG ' | tail -40
  echo "FAIL: kurento-client/Chromium test against the container" >&2
  exit 1
}

# ------------------------------------------------------------------- SIGTERM
echo "== docker: SIGTERM"
"${podman[@]}" stop -t 10 "$name" >/dev/null
code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
"${podman[@]}" logs "$name" 2>&1 | tail -3
if [[ "$code" != 0 ]]; then
  echo "FAIL: exit code $code after SIGTERM" >&2
  exit 1
fi
echo "clean exit (0) on SIGTERM"

# ------------------------------------------------------- KMS_EXTERNAL_*=auto
echo "== docker: KMS_EXTERNAL_IPV4=auto"
# coturn as a plain STUN server; -v --log-binding logs each client's address ("remote
# addr"), the oracle for what the entrypoint must have learnt.
stun_log=/tmp/kms-docker-stun.log
turnserver -n --stun-only --no-cli --no-tls --no-dtls --listening-ip=127.0.0.1 \
  --listening-port="$stun_port" --log-file=stdout -v --log-binding >"$stun_log" 2>&1 &
turn_pid=$!
for _ in $(seq 1 50); do
  grep -q 'turn server id=' "$stun_log" && break
  sleep 0.1
done
dumped="$("${podman[@]}" run --rm --network host \
  -e KMS_STUN_IP=127.0.0.1 -e KMS_STUN_PORT="$stun_port" -e KMS_EXTERNAL_IPV4=auto \
  "$image" --dump-config 2>/tmp/kms-docker-auto.log)" || { cat /tmp/kms-docker-auto.log; exit 1; }
grep '^\[entrypoint\]' /tmp/kms-docker-auto.log
sleep 0.5
seen=$(sed -n 's/.*remote addr \([0-9.]*\):[0-9]*.*/\1/p' "$stun_log" | head -n 1)
got=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["modules"]["kurento"]["WebRtcEndpoint"].get("externalIPv4", ""))' <<<"$dumped")
kill "$turn_pid" 2>/dev/null || true
if [[ -z "$seen" || "$got" != "$seen" ]]; then
  echo "FAIL: externalIPv4 '$got', the STUN server saw '$seen'" >&2
  exit 1
fi
echo "auto -> externalIPv4=$got (the address the STUN server saw)"

# (--network none: only a loopback, so STUN and every DNS resolver fail.)
"${podman[@]}" run -d --name "$name-none" --network none \
  -e KMS_STUN_IP=127.0.0.1 -e KMS_STUN_PORT="$stun_port" \
  -e KMS_EXTERNAL_IPV4=auto -e KMS_EXTERNAL_IPV6=auto "$image" >/dev/null
ts=$(date +%s%N)
ready=""
for _ in $(seq 1 200); do
  if "${podman[@]}" exec "$name-none" /healthchecker.sh >/dev/null 2>&1; then
    ready=$((($(date +%s%N) - ts) / 1000000))
    break
  fi
  sleep 0.1
done
"${podman[@]}" logs "$name-none" 2>&1 | grep '^\[entrypoint\]' || true
if [[ -z "$ready" ]]; then
  echo "FAIL: no network: the server did not start" >&2
  exit 1
fi
if "${podman[@]}" exec "$name-none" grep -E '^externalIPv[46]=' /etc/kurento/modules/kurento/WebRtcEndpoint.conf.ini; then
  echo "FAIL: no network, yet an external address was set" >&2
  exit 1
fi
"${podman[@]}" logs "$name-none" 2>&1 | grep -q 'WARNING: KMS_EXTERNAL_IPV4=auto' ||
  { echo "FAIL: no warning for the unresolved auto" >&2; exit 1; }
echo "no network: externalIPv4/6 unset, warned, server ready after $ready ms"
"${podman[@]}" rm -f -v -t 0 "$name-none" >/dev/null

# -------------------------------------------------------------------- KMS_UID
echo "== docker: KMS_UID"
"${podman[@]}" run -d --name "$name-uid" --network none --user root -e KMS_UID=4321 "$image" >/dev/null
ok=""
for _ in $(seq 1 200); do
  if "${podman[@]}" exec "$name-uid" /healthchecker.sh >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
[[ -n "$ok" ]] || { "${podman[@]}" logs "$name-uid" 2>&1 | tail; echo "FAIL: KMS_UID: no server" >&2; exit 1; }
uid=$("${podman[@]}" exec "$name-uid" awk '/^Uid:/ {print $2}' /proc/1/status)
owner=$("${podman[@]}" exec "$name-uid" stat -c %u /var/lib/kurento)
"${podman[@]}" rm -f -v -t 0 "$name-uid" >/dev/null
if [[ "$uid" != 4321 || "$owner" != 4321 ]]; then
  echo "FAIL: KMS_UID=4321 started as root: server uid $uid, media directory owner $owner" >&2
  exit 1
fi
echo "started as root with KMS_UID=4321: the server (PID 1) runs as uid $uid, /var/lib/kurento owned by $owner"
if "${podman[@]}" run --rm --network none -e KMS_UID=4321 "$image" >/tmp/kms-docker-uid.log 2>&1; then
  echo "FAIL: KMS_UID honoured silently as the image's non-root user" >&2
  exit 1
fi
grep '^\[entrypoint\] KMS_UID' /tmp/kms-docker-uid.log
echo "as the image's user (not root): refused, exit non-zero"
echo "== docker: all passed in $(($(date +%s) - t0)) s"
