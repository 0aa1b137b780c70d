#!/usr/bin/env python3
"""Checks the Kubernetes manifests of deploy/kubernetes (run by ci/test-deploy.sh
inside a venv that has kubernetes-validate, whose wheel bundles the Kubernetes
JSON schemas: no network needed).

For every directory with a kustomization.yaml:
  1. structure: each file it names exists, each YAML/script file beside it is
     named by it (a manifest nobody lists is never deployed), no unknown keys;
  2. schema: each complete resource it lists is valid against the Kubernetes
     schemas of the oldest and newest versions we claim, in strict mode
     (unknown fields such as a misspelt `readinesProbe` are errors);
  3. render: `kubectl kustomize` (or `kustomize build`) when a kustomize v4+ is
     on PATH; the rendered objects are schema-checked too (patches are only
     complete there), then
  4. rules: what a schema cannot see but a deployment of ours needs (Service
     selectors and target ports match a pod template, $(VAR) references are
     defined before use, the media server's hostNetwork/DNS/anti-affinity,
     probes on /ready and /health, the preStop drain fits in the grace period,
     the cluster variables).

--self-test DIR copies DIR and breaks the copy in several ways, one at a time,
and fails unless every broken copy is refused for the expected reason: this
check can fail.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

# Oldest Kubernetes we document as supported, and the newest the package knows.
K8S_VERSIONS = ["1.27.0", kubernetes_validate.utils.latest_version()]

KUSTOMIZATION_KEYS = {
    "apiVersion", "kind", "resources", "patches", "images", "replicas", "namespace", "labels",
    "configMapGenerator", "secretGenerator", "generatorOptions", "namePrefix", "nameSuffix",
    "commonAnnotations", "components",
}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}


class Failure(Exception):
    """A manifest problem; the message names the file or object."""


def load_yaml_docs(path: Path) -> list[dict]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as e:
        raise Failure(f"{path}: not valid YAML: {e}") from None


def kn(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# ------------------------------------------------------------------ structure
def structure(kdir: Path) -> tuple[list[Path], list[Path]]:
    """Returns (complete resource files, patch files) of one kustomization."""
    kfile = kdir / "kustomization.yaml"
    docs = load_yaml_docs(kfile)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise Failure(f"{kfile}: one YAML mapping expected")
    k = docs[0]
    unknown = set(k) - KUSTOMIZATION_KEYS
    if unknown:
        raise Failure(f"{kfile}: unknown key(s) {sorted(unknown)}")
    if k.get("kind") != "Kustomization":
        raise Failure(f"{kfile}: kind must be Kustomization")

    listed: set[Path] = set()
    resources: list[Path] = []
    patches: list[Path] = []

    def existing(rel: str, what: str) -> Path:
        p = (kdir / rel).resolve()
        if not p.exists():
            raise Failure(f"{kfile}: {what} '{rel}' does not exist")
        return p

    for rel in k.get("resources", []) or []:
        p = existing(rel, "resource")
        if p.is_dir():
            if not (p / "kustomization.yaml").is_file():
                raise Failure(f"{kfile}: resource directory '{rel}' has no kustomization.yaml")
        else:
            listed.add(p)
            resources.append(p)
    for patch in k.get("patches", []) or []:
        if "path" in patch:
            p = existing(patch["path"], "patch")
            listed.add(p)
            patches.append(p)
        elif "patch" not in patch:
            raise Failure(f"{kfile}: a patch needs `path` or `patch`")
    for gen_key in ("configMapGenerator", "secretGenerator"):
        for gen in k.get(gen_key, []) or []:
            for entry in gen.get("files", []) or []:
                rel = entry.split("=", 1)[-1]
                listed.add(existing(rel, f"{gen_key} file"))
            for rel in gen.get("envs", []) or []:
                listed.add(existing(rel, f"{gen_key} env file"))

    for f in sorted(kdir.iterdir()):
        if f.name == "kustomization.yaml" or not f.is_file():
            continue
        if f.suffix in (".yaml", ".yml", ".json", ".sh", ".env") and f.resolve() not in listed:
            raise Failure(f"{f}: not listed in {kfile} (it would never be deployed)")
    return resources, patches


# --------------------------------------------------------------------- schema
def schema(docs: list[dict], origin: str) -> int:
    checked = 0
    for doc in docs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(x) for x in e.path)
                raise Failure(f"{origin}: {kn(doc)}: {path}: {e.message} (Kubernetes {version})") from None
            except kubernetes_validate.SchemaNotFoundError:
                raise Failure(f"{origin}: {kn(doc)}: no schema for {doc.get('apiVersion')} (Kubernetes {version})") from None
            checked += 1
    return checked


# --------------------------------------------------------------------- render
def find_renderer() -> list[str] | None:
    """A kustomize v4+ command, or None. Debian 12's kubernetes-client (kubectl
    1.20) embeds kustomize v2.0.3, which cannot render directory resources."""
    if os.environ.get("KUSTOMIZE"):
        return os.environ["KUSTOMIZE"].split()
    for cmd, probe in ((["kustomize", "build"], ["kustomize", "version"]),
                       (["kubectl", "kustomize"], ["kubectl", "version", "--client"])):
        if not shutil.which(cmd[0]):
            continue
        try:
            out = subprocess.run(probe, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        m = re.search(r"(?:Kustomize Version: |^)v?(\d+)\.\d+", out, re.M)
        if m and int(m.group(1)) >= 4:
            return cmd
    return None


def render(renderer: list[str], kdir: Path) -> list[dict]:
    r = subprocess.run(renderer + [str(kdir)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise Failure(f"{kdir}: {' '.join(renderer)} failed: {r.stderr.strip()}")
    try:
        return [d for d in yaml.safe_load_all(r.stdout) if d]
    except yaml.YAMLError as e:
        raise Failure(f"{kdir}: rendered output is not YAML: {e}") from None


# ---------------------------------------------------------------------- rules
def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def template_labels(doc: dict) -> dict:
    return doc["spec"]["template"].get("metadata", {}).get("labels", {}) or {}


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def env_map(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", []) or []}


def rules(docs: list[dict], origin: str) -> int:
    checked = 0
    workloads = [d for d in docs if d.get("kind") in WORKLOAD_KINDS]
    services = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Service"}
    configmaps = {d["metadata"]["name"] for d in docs if d.get("kind") == "ConfigMap"}

    def fail(msg: str) -> None:
        raise Failure(f"{origin}: {msg}")

    for name, svc in services.items():
        sel = svc["spec"].get("selector", {})
        targets = [w for w in workloads if selects(sel, template_labels(w))]
        if not targets:
            fail(f"Service/{name}: selector {sel} matches no pod template")
        for port in svc["spec"].get("ports", []):
            tp = port.get("targetPort", port["port"])
            for w in targets:
                ports = [p for c in pod_spec(w)["containers"] for p in c.get("ports", []) or []]
                if not any(p.get("name") == tp or p.get("containerPort") == tp for p in ports):
                    fail(f"Service/{name}: targetPort {tp!r} is no container port of {kn(w)}")
        checked += 1
    for pdb in (d for d in docs if d.get("kind") == "PodDisruptionBudget"):
        sel = pdb["spec"]["selector"].get("matchLabels", {})
        if not any(selects(sel, template_labels(w)) for w in workloads):
            fail(f"{kn(pdb)}: selector {sel} matches no pod template")
        checked += 1

    for w in workloads:
        spec = pod_spec(w)
        for vol in spec.get("volumes", []) or []:
            cm = vol.get("configMap", {}).get("name")
            if cm and cm not in configmaps:
                fail(f"{kn(w)}: volume {vol['name']} names ConfigMap {cm}, which is not deployed")
        for c in spec["containers"]:
            defined: set[str] = set()
            for e in c.get("env", []) or []:
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value", "") or ""):
                    if ref not in defined:
                        fail(f"{kn(w)}: env {e['name']} uses $({ref}) before it is defined (it would stay literal)")
                defined.add(e["name"])
            checked += 1
            if "KMS_CLUSTER_REDIS_URL" in env_map(c):
                checked += media_server_rules(w, c, services, fail)
    if not any("KMS_CLUSTER_REDIS_URL" in env_map(c) for w in workloads for c in pod_spec(w)["containers"]):
        fail("no media server workload (no container sets KMS_CLUSTER_REDIS_URL)")
    return checked


def media_server_rules(w: dict, c: dict, services: dict, fail) -> int:
    spec = pod_spec(w)
    env = env_map(c)

    def value(name: str) -> str:
        if name not in env:
            fail(f"{kn(w)}: env {name} is missing")
        return str(env[name].get("value", ""))

    def field_var(path: str) -> str:
        for e in c.get("env", []):
            if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == path:
                return e["name"]
        fail(f"{kn(w)}: no env var from the downward API field {path}")
        return ""

    if spec.get("hostNetwork") is not True:
        fail(f"{kn(w)}: hostNetwork must be true (RTP port range on the node)")
    if spec.get("dnsPolicy") != "ClusterFirstWithHostNet":
        fail(f"{kn(w)}: dnsPolicy must be ClusterFirstWithHostNet (else the redis Service name does not resolve)")
    own = template_labels(w)
    anti = spec.get("affinity", {}).get("podAntiAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", [])
    if not any(t.get("topologyKey") == "kubernetes.io/hostname"
               and selects(t.get("labelSelector", {}).get("matchLabels", {}), own) for t in anti):
        fail(f"{kn(w)}: needs a required podAntiAffinity on kubernetes.io/hostname selecting its own pods")

    port = int(value("KMS_PORT"))
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    if port not in ports.values():
        fail(f"{kn(w)}: KMS_PORT {port} is not a container port")
    for probe, path in (("readinessProbe", "/ready"), ("livenessProbe", "/health")):
        get = c.get(probe, {}).get("httpGet")
        if not get or get.get("path") != path:
            fail(f"{kn(w)}: {probe} must be an httpGet of {path}")
        p = get.get("port")
        if ports.get(p, p) != port:
            fail(f"{kn(w)}: {probe} probes port {p!r}, not the ws port {port}")

    if int(value("KMS_MIN_PORT")) >= int(value("KMS_MAX_PORT")):
        fail(f"{kn(w)}: KMS_MIN_PORT must be below KMS_MAX_PORT")
    if value("KMS_CLUSTER_NODE_ID") != f"$({field_var('metadata.name')})":
        fail(f"{kn(w)}: KMS_CLUSTER_NODE_ID must be the pod name")
    if value("KMS_CLUSTER_ADVERTISED_ADDRESS") != f"$({field_var('status.podIP')}):{port}":
        fail(f"{kn(w)}: KMS_CLUSTER_ADVERTISED_ADDRESS must be $(<status.podIP>):{port}")
    url = value("KMS_CLUSTER_REDIS_URL")
    m = re.fullmatch(r"rediss?://(?:[^@/]*@)?([^:/]+)(?::(\d+))?(?:/\d*)?", url)
    if not m:
        fail(f"{kn(w)}: KMS_CLUSTER_REDIS_URL {url!r} is not a redis:// URL")
    host, rport = m.group(1), int(m.group(2) or 6379)
    if "." not in host:  # a Service of this deployment, not an external name
        svc = services.get(host)
        if not svc or not any(p["port"] == rport for p in svc["spec"].get("ports", [])):
            fail(f"{kn(w)}: KMS_CLUSTER_REDIS_URL names {host}:{rport}, no such Service port is deployed")

    cmd = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command") or []
    if not cmd:
        fail(f"{kn(w)}: needs an exec preStop hook (the drain)")
    script = cmd[-1]
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    cm_volumes = {v["name"] for v in spec.get("volumes", []) if "configMap" in v}
    if not any(script.startswith(mounts[v].rstrip("/") + "/") for v in cm_volumes if v in mounts):
        fail(f"{kn(w)}: preStop runs {script}, which is in no mounted ConfigMap")
    grace = int(spec.get("terminationGracePeriodSeconds", 30))
    drain = int(value("KMS_DRAIN_TIMEOUT"))
    if drain + 10 > grace:
        fail(f"{kn(w)}: KMS_DRAIN_TIMEOUT {drain}s leaves the SIGTERM shutdown less than 10 s "
             f"of terminationGracePeriodSeconds {grace}")
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(kind, {}):
                fail(f"{kn(w)}: resources.{kind}.{r} is missing")
    return 1


# ----------------------------------------------------------------------- main
def check_tree(root: Path, renderer: list[str] | None, quiet: bool = False) -> dict[str, int]:
    counts = {"kustomizations": 0, "schema": 0, "rendered": 0, "rules": 0}
    kdirs = sorted(p.parent for p in root.rglob("kustomization.yaml"))
    if not kdirs:
        raise Failure(f"{root}: no kustomization.yaml")
    for kdir in kdirs:
        resources, _patches = structure(kdir)
        counts["kustomizations"] += 1
        for f in resources:
            counts["schema"] += schema(load_yaml_docs(f), str(f))
        if renderer:
            docs = render(renderer, kdir)
            counts["schema"] += schema(docs, f"{kdir} (rendered)")
            counts["rules"] += rules(docs, f"{kdir} (rendered)")
            counts["rendered"] += 1
        else:
            # Without a renderer: the rules on the directory's own complete
            # resources, where they include the whole deployment (the base).
            docs = [d for f in resources for d in load_yaml_docs(f)]
            if any(d.get("kind") in WORKLOAD_KINDS for d in docs):
                gens = load_yaml_docs(kdir / "kustomization.yaml")[0].get("configMapGenerator", []) or []
                docs += [{"kind": "ConfigMap", "metadata": {"name": g["name"]}} for g in gens]
                counts["rules"] += rules(docs, str(kdir))
        if not quiet:
            print(f"  ok {kdir}")
    return counts


# Each: (file, text to replace, replacement, words the refusal must contain,
# needs a renderer).
BREAKAGES = [
    ("base/media-server-deployment.yaml", "containerPort: 8888", 'containerPort: "8888x"', "containerPort", False),
    ("base/media-server-deployment.yaml", "readinessProbe:", "readinesProbe:", "readinesProbe", False),
    ("base/redis-service.yaml", "port: 6379", "port: [6379", "not valid YAML", False),
    ("base/kustomization.yaml", "- media-server-pdb.yaml", "- media-server-pdb.yml", "does not exist", False),
    ("base/kustomization.yaml", "  - redis-service.yaml\n", "", "not listed", False),
    ("base/media-server-service.yaml", "targetPort: ws", "targetPort: websocket", "targetPort", False),
    ("base/media-server-deployment.yaml", "dnsPolicy: ClusterFirstWithHostNet", "dnsPolicy: ClusterFirst",
     "dnsPolicy", False),
    ("base/media-server-deployment.yaml", "value: $(POD_NAME)", "value: $(POD_NAM)", "before it is defined", False),
    ("base/media-server-deployment.yaml", "path: /ready", "path: /health", "readinessProbe", False),
    ("base/media-server-deployment.yaml", "topologyKey: kubernetes.io/hostname", "topologyKey: topology.kubernetes.io/zone",
     "podAntiAffinity", False),
    ("overlays/example/media-server-patch.yaml", 'value: "1140"', 'value: "1195"', "KMS_DRAIN_TIMEOUT", True),
    ("base/media-server-deployment.yaml", "value: redis://redis:6379", "value: redis://redis-master:6379",
     "no such Service", False),
    ("overlays/example/media-server-patch.yaml", "terminationGracePeriodSeconds: 1200",
     "terminationGracePeriodSeconds: twenty-minutes", "terminationGracePeriodSeconds", True),
]


def self_test(root: Path, renderer: list[str] | None) -> None:
    refused = skipped = 0
    for rel, old, new, words, needs_render in BREAKAGES:
        if needs_render and not renderer:
            skipped += 1
            continue
        with tempfile.TemporaryDirectory(prefix="deploy-broken-") as tmp:
            copy = Path(tmp) / "kubernetes"
            shutil.copytree(root, copy)
            f = copy / rel
            text = f.read_text()
            if old not in text:
                raise Failure(f"self-test: '{old}' is no longer in {rel}: update BREAKAGES")
            f.write_text(text.replace(old, new, 1))
            try:
                check_tree(copy, renderer, quiet=True)
            except Failure as e:
                msg = str(e)
                if words.lower() not in msg.lower():
                    raise Failure(f"self-test: {rel} with {new!r} was refused for another reason: {msg}") from None
                print(f"  refused as expected: {rel}: {old.strip()!r} -> {new.strip()!r}: {msg.splitlines()[0][:160]}")
                refused += 1
                continue
            raise Failure(f"self-test: {rel} with {old.strip()!r} -> {new.strip()!r} passed the checks")
    print(f"self-test: {refused} broken copies refused"
          + (f", {skipped} skipped (they need a kustomize renderer)" if skipped else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="deploy/kubernetes")
    ap.add_argument("--self-test", action="store_true", help="also prove that broken copies are refused")
    ap.add_argument("--require-render", action="store_true", help="fail when no kustomize v4+ is on PATH")
    ap.add_argument("--no-render", action="store_true",
                    help="check as on a machine without kustomize (the fallback must refuse broken copies too)")
    args = ap.parse_args()
    renderer = None if args.no_render else find_renderer()
    if renderer:
        print(f"render: {' '.join(renderer)}")
    elif args.require_render:
        print("FAIL: no kustomize v4+ (kubectl kustomize / kustomize build) on PATH", file=sys.stderr)
        return 1
    else:
        why = "--no-render" if args.no_render else "no kustomize v4+ on PATH (kubectl >= 1.27, or kustomize)"
        print(f"render: skipped ({why}); structure, schemas of the listed resources and the base's rules "
              "are still checked")
    try:
        counts = check_tree(args.root, renderer)
        print(f"manifests: {counts['kustomizations']} kustomizations, {counts['rendered']} rendered, "
              f"{counts['schema']} schema validations (strict, Kubernetes {' and '.join(K8S_VERSIONS)}), "
              f"{counts['rules']} rule checks passed")
        if args.self_test:
            self_test(args.root, renderer)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
