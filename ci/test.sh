#!/usr/bin/env bash
# Installs everything, builds, and runs every test. This is the README's test
# command and what CI (.ci/run) calls.
set -euo pipefail
cd "$(dirname "$0")/.."

ci/setup.sh --with-tests

echo "== style"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== build"
cargo build --workspace --all-targets

echo "== Rust tests"
cargo test --workspace 2>&1 | tee /tmp/kms-cargo-test.log

echo "== protocol conformance (official kurento-client against the real server)"
# limits.test.js opens 600+ sockets at once (soft limits are often 1024).
[[ "$(ulimit -n)" == unlimited || "$(ulimit -n)" -ge 4096 ]] || ulimit -n 4096 2>/dev/null || true
(cd tests/conformance && npm ci --ignore-scripts --no-audit --no-fund >/dev/null && node --test --test-concurrency=1)

echo "== protocol conformance again on the native WebRTC transport (KMS_WEBRTC_TRANSPORT=native)"
# The files that create WebRtcEndpoints; the others never touch a transport.
(cd tests/conformance && KMS_WEBRTC_TRANSPORT=native node --test --test-concurrency=1 webrtc.test.js operations.test.js)

echo "== generated JS client modules (official kurento-client register())"
tests/js-modules/run.sh

echo "== module scaffold: new → cargo build → server with the module, driven by the official kurento-client"
tests/scaffold/run.sh

echo "== cluster: redis-server and three servers as one endpoint, official kurento-client on one node"
tests/cluster/run.sh

tests/browser/run.sh
echo "== the browser suite's WebRTC files again on the native WebRTC transport (KMS_WEBRTC_TRANSPORT=native)"
# The whole suite passes on native but for one bitrate bound in rtp.test.js
# (docs/architecture.md); these are the files about the transport itself
# (turn.test.js and native.test.js test it in the main run; transport.test.js,
# mtu.test.js and loss.test.js pass on it by hand).
KMS_WEBRTC_TRANSPORT=native tests/browser/run.sh webrtc.test.js webrtc-stats.test.js remb.test.js
echo "== dashboard screenshots (CI artifacts): tests/browser/artifacts/dashboard.png, dashboard-graph-4x.png"

echo "== Kubernetes manifests (schemas, kustomize, rules, broken copies refused) and the preStop drain"
ci/test-deploy.sh

echo "== container image (podman: build, run, healthcheck, kurento-client + Chromium, SIGTERM)"
ci/test-docker.sh

echo "== all tests passed"
