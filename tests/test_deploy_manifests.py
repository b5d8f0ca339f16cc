"""deploy/k8s, checked offline: `kubectl kustomize` renders each overlay (kubectl is on the
project's machines; Debian's own `kubernetes-client` is 1.20, whose kustomize predates
components), every rendered and every raw manifest matches the Kubernetes schemas
(kubernetes-validate, strict) or, for KEDA's and the Prometheus Operator's kinds, the schemas
in tests/schemas/, and the manifests keep what the issue asks of them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_manifests import (
    BASE,
    K8S,
    OVERLAYS,
    SECRET_EXAMPLE,
    by_kind,
    container_env,
    documents,
    kubectl,
    kustomization_files,
    manifest_files,
    referenced_paths,
    render,
    schema_problem,
)
from tests.deploy_settings import (
    settings_source,
    variable_problem,
)
from worker.settings import Settings

# The oldest Kubernetes release deploy/README.md supports, and the newest kubernetes-validate
# knows.
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
NAMESPACE = "levers-batcher"


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    if kubectl() is None:
        pytest.fail(
            "kubectl is not on PATH: it renders the overlays (`kubectl kustomize`). Install "
            "kubectl >= 1.21 (its kustomize must know components); Debian's kubernetes-client "
            "is too old. tests/deploy_manifests.py referenced_paths() checks the files anyway."
        )
    return render(K8S / "overlays" / request.param)


def worker_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = by_kind(docs, "Deployment", "levers-worker")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def settings_env(docs: list[dict[str, Any]]) -> dict[str, str]:
    [config] = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("levers-batcher-settings")
    ]
    data: dict[str, str] = config["data"]
    return data


def test_every_file_a_kustomization_names_exists() -> None:
    files = kustomization_files()
    assert len(files) >= 7
    for kustomization in files:
        for path in referenced_paths(kustomization):
            assert path.exists(), f"{kustomization.relative_to(K8S)} names {path}"
    listed = {p.resolve() for k in kustomization_files() for p in referenced_paths(k)}
    unused = [p for p in manifest_files() if p.resolve() not in listed and p != SECRET_EXAMPLE]
    assert not unused, f"manifests no kustomization uses: {unused}"


def test_overlays_render_every_resource(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in rendered)
    assert kinds.count("Deployment") == 2 and kinds.count("PodDisruptionBudget") == 2
    for kind in ("Namespace", "Service", "ConfigMap", "ServiceMonitor", "PrometheusRule"):
        assert kind in kinds
    assert ("ScaledObject" in kinds) != ("HorizontalPodAutoscaler" in kinds), kinds
    assert "Secret" not in kinds  # created by hand: apply -k must never overwrite it
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_match_their_schemas(
    rendered: list[dict[str, Any]], version: str
) -> None:
    problems = {
        f"{d['kind']}/{d['metadata']['name']}": problem
        for d in rendered
        if (problem := schema_problem(d, version))
    }
    assert not problems, problems


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_each_manifest_file_matches_its_schema(path: Path) -> None:
    for doc in documents(path):
        assert schema_problem(doc, KUBERNETES_VERSIONS[-1]) is None, path


def test_the_schema_checks_refuse_a_misspelt_field() -> None:
    [deployment] = documents(BASE / "worker-deployment.yaml")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    assert "replica" in str(schema_problem(deployment, KUBERNETES_VERSIONS[-1]))
    [scaled] = documents(K8S / "components" / "keda" / "scaledobject.yaml")
    del scaled["spec"]["triggers"][0]["metadata"]["threshold"]
    assert "threshold" in str(schema_problem(scaled, KUBERNETES_VERSIONS[-1]))
    scaled["spec"]["trigers"] = scaled["spec"].pop("triggers")
    assert "trigers" in str(schema_problem(scaled, KUBERNETES_VERSIONS[-1]))
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert "no schema" in str(schema_problem(unknown, KUBERNETES_VERSIONS[-1]))


def test_worker_probes_resources_and_shutdown(rendered: list[dict[str, Any]]) -> None:
    deployment = by_kind(rendered, "Deployment", "levers-worker")
    pod = deployment["spec"]["template"]["spec"]
    container = worker_container(rendered)
    settings = settings_env(rendered)
    [port] = container["ports"]
    assert str(port["containerPort"]) == settings["LEVERS_METRICS_PORT"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
    # --processes is set, and no larger than the CPUs the pod may use.
    args = container["args"]
    processes = int(args[args.index("--processes") + 1])
    assert processes <= float(container["resources"]["limits"]["cpu"])
    # A send claimed before SIGTERM is on the wire within its lease and answered within the
    # connect and request timeouts; the pod must not be killed before.
    needed = sum(
        float(settings[name])
        for name in (
            "LEVERS_SEND_LEASE_SECONDS",
            "LEVERS_CONNECT_TIMEOUT_SECONDS",
            "LEVERS_REQUEST_TIMEOUT_SECONDS",
        )
    )
    assert pod["terminationGracePeriodSeconds"] >= needed
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # Autoscaled: the replica count belongs to KEDA or the HPA, not to `kubectl apply`.
    assert "replicas" not in deployment["spec"]


def test_pods_run_without_privileges(rendered: list[dict[str, Any]]) -> None:
    for name in ("levers-worker", "levers-ingest"):
        pod = by_kind(rendered, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
    worker = by_kind(rendered, "Deployment", "levers-worker")["spec"]["template"]["spec"]
    metrics_dir = Path(container_env(worker_container(rendered))["PROMETHEUS_MULTIPROC_DIR"])
    [mount] = [
        m
        for m in worker["containers"][0]["volumeMounts"]
        if Path(m["mountPath"]) in metrics_dir.parents
    ]
    [volume] = [v for v in worker["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"


def test_ingest_is_served_and_probed(rendered: list[dict[str, Any]]) -> None:
    deployment = by_kind(rendered, "Deployment", "levers-ingest")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["levers-ingest"]
    args = container["args"]
    port = args[args.index("--port") + 1]
    assert port == settings_env(rendered)["LEVERS_INGEST_PORT"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    service = by_kind(rendered, "Service", "levers-ingest")
    [service_port] = service["spec"]["ports"]
    assert str(service_port["port"]) == port and service_port["targetPort"] == "http"
    selector = service["spec"]["selector"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_every_variable_is_a_setting_with_a_valid_value(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    values = dict(settings_env(rendered))
    for name in ("levers-worker", "levers-ingest"):
        pod = by_kind(rendered, "Deployment", name)["spec"]["template"]["spec"]
        for container in pod["containers"]:
            env = container_env(container)
            problems = {n: p for n in [*values, *env] if (p := variable_problem(n))}
            assert not problems, (name, problems)
            literal = {k: v for k, v in env.items() if not v.startswith("<from")}
            Settings.from_env(settings_source(values | literal, tmp_path))


def test_secret_keys_and_files_line_up(rendered: list[dict[str, Any]]) -> None:
    [example] = documents(SECRET_EXAMPLE)
    assert schema_problem(example, KUBERNETES_VERSIONS[-1]) is None
    keys = set(example["stringData"])
    for name in ("levers-worker", "levers-ingest"):
        pod = by_kind(rendered, "Deployment", name)["spec"]["template"]["spec"]
        [volume] = [v for v in pod["volumes"] if "secret" in v]
        assert volume["secret"]["secretName"] == example["metadata"]["name"]
        items = {item["key"]: item["path"] for item in volume["secret"]["items"]}
        assert set(items) <= keys
        [container] = pod["containers"]
        [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        files = {f"{mount['mountPath']}/{path}" for path in items.values()}
        for item in container.get("env", []):
            if item["name"].endswith("_FILE") and item["value"].startswith(mount["mountPath"]):
                assert item["value"] in files, item
            if "secretKeyRef" in item.get("valueFrom", {}):
                assert item["valueFrom"]["secretKeyRef"]["key"] in keys, item


def test_policy_is_mounted_where_the_setting_points(rendered: list[dict[str, Any]]) -> None:
    path = Path(settings_env(rendered)["LEVERS_POLICY_FILE"])
    [policy] = [
        d
        for d in rendered
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("levers-batcher-policy")
    ]
    tomllib.loads(policy["data"][path.name])
    for name in ("levers-worker", "levers-ingest"):
        pod = by_kind(rendered, "Deployment", name)["spec"]["template"]["spec"]
        [volume] = [
            v
            for v in pod["volumes"]
            if v.get("configMap", {}).get("name") == policy["metadata"]["name"]
        ]
        [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
        assert Path(mount["mountPath"]) == path.parent


def test_the_configmaps_calling_policy_is_valid() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli_admin", "policy", "check", str(BASE / "policy.toml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
