#!/usr/bin/env bash
# Installs everything, builds, and runs every test. This is the README's test
# command and what CI (.ci/run) calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's heading carries the minutes:seconds since the start (where
# CI's time goes).
step() { printf '== [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

ci/setup.sh --with-tests

step "style"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "build"
cargo build --workspace --all-targets

step "Rust tests"
cargo test --workspace 2>&1 | tee /tmp/kms-cargo-test.log

# The WebRTC transport is native by default; the conformance and browser
# suites run whole on each (KMS_WEBRTC_TRANSPORT), every other suite on the
# default.
step "protocol conformance (official kurento-client against the real server), default (native) WebRTC transport"
# limits.test.js opens 600+ sockets at once (soft limits are often 1024).
[[ "$(ulimit -n)" == unlimited || "$(ulimit -n)" -ge 4096 ]] || ulimit -n 4096 2>/dev/null || true
(cd tests/conformance && npm ci --ignore-scripts --no-audit --no-fund >/dev/null && node --test --test-concurrency=1)

step "protocol conformance again, whole, on the webrtcbin WebRTC transport (KMS_WEBRTC_TRANSPORT=webrtcbin)"
(cd tests/conformance && KMS_WEBRTC_TRANSPORT=webrtcbin node --test --test-concurrency=1)

step "generated JS client modules (official kurento-client register())"
tests/js-modules/run.sh

step "module scaffold: new → cargo build → server with the module, driven by the official kurento-client"
tests/scaffold/run.sh

step "cluster: redis-server and three servers as one endpoint, official kurento-client on one node"
tests/cluster/run.sh

step "browser suite (headless Chromium) on the default WebRTC transport (native)"
tests/browser/run.sh
step "the browser suite again, whole, on the webrtcbin WebRTC transport (KMS_WEBRTC_TRANSPORT=webrtcbin)"
KMS_WEBRTC_TRANSPORT=webrtcbin tests/browser/run.sh
step "dashboard screenshots (CI artifacts): tests/browser/artifacts/dashboard.png, dashboard-graph-4x.png"

step "Kubernetes manifests (schemas, kustomize, rules, broken copies refused) and the preStop drain"
ci/test-deploy.sh

step "container image (podman: build, run, healthcheck, kurento-client + Chromium, SIGTERM)"
ci/test-docker.sh

step "all tests passed"
