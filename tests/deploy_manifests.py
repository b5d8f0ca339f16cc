"""Reads the Kubernetes manifests in deploy/k8s for the tests, and checks them against schemas.

A helper for tests/test_deploy_manifests.py and tests/test_deploy_autoscaling.py, not a test
module. Everything here works offline: Kubernetes' own kinds are checked with
kubernetes-validate's bundled schemas, the custom resources (KEDA, Prometheus Operator) with the
schemas in tests/schemas/ (see its README). Rendering uses `kubectl kustomize`.

    python -m tests.deploy_manifests prometheusrule   # prints the PrometheusRule for alerts.yml
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.deploy_container import DEPLOY

K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAYS = ("production", "production-hpa")
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_RULE = K8S / "components" / "monitoring" / "prometheusrule.yaml"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

# Metrics the manifests use before docs/metrics.md documents them; remove each name once it is
# documented (the tests then check it like every other).
PENDING_METRICS: set[str] = set()

# Kinds without a schema in kubernetes-validate, by (apiVersion, kind).
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.keda.sh_v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.monitoring.coreos.com_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.monitoring.coreos.com_v1.json",
}


# -- Kubernetes ---------------------------------------------------------------------------------


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize DIRECTORY`: what `kubectl apply -k` would send."""
    path = kubectl()
    if path is None:
        raise RuntimeError("kubectl is not on PATH")
    result = subprocess.run(
        [path, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kustomization_files() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def referenced_paths(kustomization: Path) -> list[Path]:
    """Every file or directory a kustomization names: resources, components, patches by path,
    and the files of its generators."""
    spec = load_yaml(kustomization)
    here = kustomization.parent
    named: list[str] = [*spec.get("resources", []), *spec.get("components", [])]
    for patch in spec.get("patches", []):
        if "path" in patch:
            named.append(patch["path"])
    named.extend(spec.get("patchesStrategicMerge", []))
    for generator in [*spec.get("configMapGenerator", []), *spec.get("secretGenerator", [])]:
        named.extend(generator.get("envs", []))
        for item in generator.get("files", []):
            named.append(item.partition("=")[2] or item)
    return [here / name for name in named]


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest under deploy/k8s (kustomization files left out)."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def schema_problem(doc: Mapping[str, Any], version: str) -> str | None:
    """Why `doc` does not match its kind's schema for Kubernetes `version`, or None. Strict:
    a field the schema does not name is a problem."""
    import kubernetes_validate

    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CUSTOM_SCHEMAS:
        schema = json.loads((SCHEMAS / CUSTOM_SCHEMAS[key]).read_text(encoding="utf-8"))
        errors = sorted(
            jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path)
        )
        if errors:
            return "; ".join(
                f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors
            )
        return None
    try:
        kubernetes_validate.validate(dict(doc), version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return f"no schema for {key[1]} {key[0]}: add one to tests/schemas/"
    except kubernetes_validate.ValidationError as exc:
        return f"{_where(exc.path)}: {exc.message}"
    return None


def _where(path: Iterable[Any]) -> str:
    return ".".join(map(str, path)) or "<root>"


def by_kind(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    if len(found) != 1:
        raise LookupError(f"{len(found)} {kind} named {name}")
    return found[0]


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    """The container's literal `env` values (valueFrom ones as '<from …>')."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = f"<from {next(iter(item['valueFrom']))}>"
    return env


# -- the PrometheusRule -------------------------------------------------------------------------

_RULE_HEADER = """\
# deploy/prometheus/alerts.yml as a PrometheusRule, for the Prometheus Operator. Keep the two
# equal: tests/test_deploy_manifests.py compares them. After editing alerts.yml, regenerate
# this file with `python -m tests.deploy_manifests prometheusrule > <this file>`.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: levers-batcher
  labels:
    release: kube-prometheus-stack
spec:
"""


def prometheus_rule_text() -> str:
    """The PrometheusRule for deploy/prometheus/alerts.yml: its `groups` under `spec`."""
    lines = ALERT_RULES.read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    body = "\n".join(("  " + line) if line.strip() else "" for line in lines)
    return _RULE_HEADER + body + "\n"


def _main(argv: list[str]) -> int:
    if argv == ["prometheusrule"]:
        sys.stdout.write(prometheus_rule_text())
        return 0
    print("usage: python -m tests.deploy_manifests prometheusrule", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
