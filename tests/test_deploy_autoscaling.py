"""Autoscaling and monitoring in deploy/k8s: the number KEDA scales on is the backlog counted
once (promtool evaluates the ScaledObject's own query on series shaped like the workers'),
the HPA fallback keeps the same floor, the ServiceMonitor scrapes what the alert rules and the
query expect, and the PrometheusRule is the alert rules file."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_files import documented_metrics, names_in, rule_exprs
from tests.deploy_manifests import (
    K8S,
    PENDING_METRICS,
    PROMETHEUS_RULE,
    by_kind,
    documents,
    kubectl,
    load_yaml,
    prometheus_rule_text,
    render,
)
from tests.test_deploy_files import promtool

KEDA = K8S / "components" / "keda"
HPA = K8S / "components" / "hpa"
MONITORING = K8S / "components" / "monitoring"


def trigger() -> dict[str, Any]:
    [scaled] = documents(KEDA / "scaledobject.yaml")
    [only] = scaled["spec"]["triggers"]
    return dict(only)


def promtool_says(
    expr: str, series: list[dict[str, str]], value: float, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """promtool's verdict on: `expr` over `series` is one sample without labels, `value`."""
    tests = {
        "rule_files": [],
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "5m",
                        "exp_samples": [{"labels": "{}", "value": value}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "scaler_test.yml"
    path.write_text(json.dumps(tests))  # JSON is YAML
    return subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def replica_series(value: int, replicas: int, **labels: str) -> list[dict[str, str]]:
    """`levers_backlog_contacts` as `replicas` workers report it: each the same Redis count."""
    common = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return [
        {
            "series": f'levers_backlog_contacts{{{common},instance="10.0.0.{i}:9191"}}',
            "values": f"{value}x10",
        }
        for i in range(replicas)
    ]


def test_the_scaler_reads_the_backlog_once_however_many_workers_report_it(
    tmp_path: Path,
) -> None:
    query = trigger()["metadata"]["query"]
    ours = {"job": "levers-batcher", "namespace": "levers-batcher"}
    series = [
        *replica_series(120_000, 3, **ours),
        # Another installation in the same Prometheus, and another job: not ours to count.
        *replica_series(900_000, 2, job="levers-batcher", namespace="staging"),
        *replica_series(700_000, 1, job="other", namespace="levers-batcher"),
    ]
    result = promtool_says(query, series, 120_000, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # The check can fail: `sum` reads the backlog once per replica, three times too many.
    summed = query.replace("max(", "sum(", 1)
    assert promtool_says(summed, series, 120_000, tmp_path).returncode != 0
    assert promtool_says(summed, series, 360_000, tmp_path).returncode == 0


def test_replicas_follow_the_backlog_between_the_bounds() -> None:
    [scaled] = documents(KEDA / "scaledobject.yaml")
    spec = scaled["spec"]
    threshold = float(trigger()["metadata"]["threshold"])
    assert trigger()["metricType"] == "AverageValue"

    def replicas(backlog: float) -> int:
        # The HPA that KEDA drives: ceil(metric / target) for an AverageValue target.
        wanted = math.ceil(backlog / threshold)
        return min(spec["maxReplicaCount"], max(spec["minReplicaCount"], wanted))

    assert replicas(0) == 2  # never below two: a batch is cut on time only by a live worker
    assert replicas(120_000) == 3
    assert replicas(10_000_000) == spec["maxReplicaCount"]
    assert spec["minReplicaCount"] >= 2 and "idleReplicaCount" not in spec
    assert spec["fallback"]["replicas"] >= spec["minReplicaCount"]
    assert spec["scaleTargetRef"]["name"] == "levers-worker"


def test_the_query_names_what_the_servicemonitor_and_the_overlays_produce() -> None:
    query = trigger()["metadata"]["query"]
    [monitor] = documents(MONITORING / "servicemonitor.yaml")
    [worker_endpoint] = [e for e in monitor["spec"]["endpoints"] if e["port"] == "metrics"]
    [relabel] = worker_endpoint["relabelings"]
    assert relabel["targetLabel"] == "job"
    assert f'job="{relabel["replacement"]}"' in query
    for overlay in ("production", "production-hpa"):
        namespace = load_yaml(K8S / "overlays" / overlay / "kustomization.yaml")["namespace"]
        assert f'namespace="{namespace}"' in query
    # The alert rules know the workers under the same job.
    assert f'job="{relabel["replacement"]}"' in rule_exprs()["LeversWorkerDown"]


def test_the_scaler_metric_is_documented() -> None:
    used = names_in(trigger()["metadata"]["query"])
    assert used == {"levers_backlog_contacts"}
    undocumented = used - set(documented_metrics()) - PENDING_METRICS
    assert not undocumented, f"not in docs/metrics.md: {undocumented}"


def test_the_cpu_fallback_keeps_the_same_floor_and_ceiling() -> None:
    [hpa] = documents(HPA / "hpa.yaml")
    [scaled] = documents(KEDA / "scaledobject.yaml")
    assert hpa["spec"]["minReplicas"] == scaled["spec"]["minReplicaCount"]
    assert hpa["spec"]["maxReplicas"] == scaled["spec"]["maxReplicaCount"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "levers-worker"
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_both_autoscalers_leave_the_replica_count_to_themselves() -> None:
    for component in (KEDA, HPA):
        [patch] = load_yaml(component / "kustomization.yaml")["patches"]
        assert patch["target"]["name"] == "levers-worker"
        assert "path: /spec/replicas" in patch["patch"] and "op: remove" in patch["patch"]


@pytest.mark.parametrize("overlay", ["production", "production-hpa"])
def test_the_servicemonitor_finds_both_services_and_their_ports(overlay: str) -> None:
    if kubectl() is None:
        pytest.fail("kubectl is not on PATH: it renders the overlays (`kubectl kustomize`)")
    docs = render(K8S / "overlays" / overlay)
    monitor = by_kind(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    for name, port in (("levers-worker", "metrics"), ("levers-ingest", "http")):
        service = by_kind(docs, "Service", name)
        assert selector.items() <= service["metadata"]["labels"].items(), name
        assert port in {p["name"] for p in service["spec"]["ports"]} and port in ports
    # Headless: Prometheus scrapes every worker pod, not one behind a virtual IP.
    assert by_kind(docs, "Service", "levers-worker")["spec"]["clusterIP"] == "None"
    for budget in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        assert budget["spec"]["maxUnavailable"] == 1


def test_the_prometheusrule_is_the_alert_rules_file() -> None:
    assert PROMETHEUS_RULE.read_text(encoding="utf-8") == prometheus_rule_text(), (
        "regenerate: python -m tests.deploy_manifests prometheusrule > "
        "deploy/k8s/components/monitoring/prometheusrule.yaml"
    )
    [rule] = documents(PROMETHEUS_RULE)
    assert rule["spec"] == load_yaml(K8S.parent / "prometheus" / "alerts.yml")
