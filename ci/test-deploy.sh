#!/usr/bin/env bash
# Kubernetes deployment (deploy/kubernetes, docs/kubernetes.md):
#   1. the manifests: kustomization structure, strict schema validation with
#      kubernetes-validate (its wheel bundles the Kubernetes JSON schemas),
#      `kubectl kustomize` rendering when a kustomize v4+ is on PATH, and the
#      deployment rules; then the same checks on deliberately broken copies,
#      each of which must be refused (ci/test-deploy-manifests.py);
#   2. the preStop drain hook against the real server binary with the official
#      kurento-client (ci/test-deploy-drain.test.js).
# Needs: /usr/bin/python3 with venv (Debian python3-venv), PyPI; for step 2 the
# debug server (cargo build) and tests/conformance/node_modules (npm ci), both
# there when ci/test.sh calls it. --manifests-only skips step 2.
# KMS_DEPLOY_REQUIRE_RENDER=1 fails when no kustomize v4+ is found.
set -euo pipefail
cd "$(dirname "$0")/.."

KV_VERSION=1.37.0
venv="target/deploy-venv"
started=$SECONDS

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KV_VERSION')" 2>/dev/null; then
  echo "installing kubernetes-validate $KV_VERSION into $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION"
fi

args=(deploy/kubernetes --self-test)
[[ "${KMS_DEPLOY_REQUIRE_RENDER:-0}" == 1 ]] && args+=(--require-render)
"$venv/bin/python" ci/test-deploy-manifests.py "${args[@]}"
# What a machine without kustomize checks must hold on its own, broken copies
# included (redundant, and cheap, when no renderer was found above).
echo "without rendering:"
"$venv/bin/python" ci/test-deploy-manifests.py deploy/kubernetes --self-test --no-render | grep -v '^  '

if [[ "${1:-}" != --manifests-only ]]; then
  bin="${KMS_BIN:-target/debug/kurento-media-server}"
  [[ -x "$bin" ]] || { echo "ci/test-deploy.sh: no server binary at $bin (cargo build first, or --manifests-only)" >&2; exit 1; }
  [[ -d tests/conformance/node_modules/kurento-client ]] ||
    { echo "ci/test-deploy.sh: tests/conformance/node_modules missing (npm ci there first, or --manifests-only)" >&2; exit 1; }
  KMS_BIN="$bin" node --test --test-force-exit ci/test-deploy-drain.test.js
fi
echo "ci/test-deploy.sh: done in $((SECONDS - started)) s"
