"""The operator files in deploy/: the Grafana dashboard and the Prometheus alert rules use only
the metrics docs/metrics.md documents, aggregate the Redis gauges with max, and load in
Prometheus (promtool checks the rules and evaluates the alert expressions on made-up series)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_files import (
    ALERT_RULES,
    documented_metrics,
    documented_samples,
    load_dashboard,
    metric_names_used,
    names_in,
    rule_exprs,
    strip_histogram_suffix,
    template_queries,
)

JOB = 'job="levers-batcher"'


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: install Debian's `prometheus` package "
            "(apt-get install prometheus), which provides /usr/bin/promtool"
        )
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in query_panels(dashboard) for target in panel["targets"]]


def test_dashboard_loads_with_panels_that_query_prometheus() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "levers-batcher"
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = query_panels(dashboard)
    assert len(panels) >= 10
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])
    assert template_queries(dashboard) == ["label_values(levers_contacts_total, job)"] * 2


def test_alert_rules_have_for_severity_and_operator_guidance() -> None:
    text = ALERT_RULES.read_text(encoding="utf-8")
    exprs = rule_exprs(text)
    assert {
        "LeversDeadLettersRising",
        "LeversPendingTooOld",
        "LeversRateLimitPausedLong",
        "LeversNoSuccessWhilePending",
        "LeversTokenFailures",
    } <= set(exprs)
    blocks = re.split(r"^\s*- alert:", text, flags=re.MULTILINE)[1:]
    assert len(blocks) == len(exprs)
    for block in blocks:
        name = block.split()[0]
        for needle in ("for:", "severity:", "summary:", "description:", "levers-admin"):
            assert needle in block, (name, needle)


def test_expressions_are_extracted_from_both_files() -> None:
    exprs = rule_exprs()
    assert exprs["LeversPendingTooOld"] == (
        "max by (batch_key) (levers_pending_oldest_age_seconds) > 6"
    )
    assert exprs["LeversNoSuccessWhilePending"].startswith("(sum(increase(")
    used = metric_names_used()
    assert {
        "levers_contacts_total",
        "levers_batch_size_contacts_bucket",
        "levers_dead_letters_held",
        "levers_token_failures_total",
        "levers_batches_in_flight",
    } <= used


def test_rule_exprs_reads_plain_quoted_and_block_scalars() -> None:
    text = """groups:
  - name: g
    rules:
      - alert: Plain
        expr: max(levers_a) > 1
          and max(levers_b) > 0
        for: 1m
      - alert: "Quoted"
        expr: "levers_c{x=\\"y\\"} == 1"
      - record: job:levers_d:rate5m
        expr: >-
          sum(rate(levers_d_total[5m]))

          + 1
        labels: {}
      - alert: Block
        expr: |
          levers_e
            > 2
        for: 5m
"""
    assert rule_exprs(text) == {
        "Plain": "max(levers_a) > 1 and max(levers_b) > 0",
        "Quoted": 'levers_c{x="y"} == 1',
        "job:levers_d:rate5m": "sum(rate(levers_d_total[5m]))\n\n+ 1",
        "Block": "levers_e\n> 2",
    }


def test_label_values_are_not_taken_for_metric_names() -> None:
    expr = (
        'sum(rate(levers_requests_total{status_class="2xx", queue="levers_contacts_x",'
        " batch_key='dramatiq_y'}[5m]))"
    )
    assert names_in(expr) == {"levers_requests_total"}


def test_every_metric_used_is_documented() -> None:
    documented = set(documented_metrics())
    assert "levers_pending_contacts" in documented  # the gauge table is read too
    assert "dramatiq_messages_total" in documented  # and dramatiq's prose section
    undocumented = {
        name for name in metric_names_used() if strip_histogram_suffix(name) not in documented
    }
    assert not undocumented, f"not in docs/metrics.md: {sorted(undocumented)}"


def test_every_sample_name_exists_on_the_endpoint() -> None:
    # A histogram is only ever queried through _bucket/_sum/_count, and nothing else is.
    wrong = metric_names_used() - documented_samples()
    assert not wrong, f"no such sample on the endpoint: {sorted(wrong)}"


def enclosing_aggregation(expr: str, position: int) -> str | None:
    """The function or aggregation whose parentheses directly enclose `position`."""
    depth = 0
    for i in range(position - 1, -1, -1):
        if expr[i] == ")":
            depth += 1
        elif expr[i] == "(":
            if depth:
                depth -= 1
                continue
            head = re.sub(r"\b(?:by|without)\s*\([^()]*\)\s*$", "", expr[:i].rstrip()).rstrip()
            word = re.search(r"[a-z_]+$", head)
            return word[0] if word else None
    return None


def test_redis_gauges_are_aggregated_with_max() -> None:
    gauges = {name for name, kind in documented_metrics().items() if kind == "gauge"}
    assert "levers_dead_letters_held" in gauges
    dashboard = load_dashboard()
    checked = 0
    for expr in [*panel_exprs(dashboard), *rule_exprs().values()]:
        bare = re.sub(r'"[^"]*"', lambda m: " " * len(m[0]), expr)
        for match in re.finditer(r"\b(?:levers|dramatiq)_[a-z0-9_]+\b", bare):
            if match[0] in gauges:
                checked += 1
                assert enclosing_aggregation(bare, match.start()) == "max", expr
    assert checked >= 10


def test_alert_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_dashboard_exprs_are_valid_promql(tmp_path: Path) -> None:
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, expr in enumerate(panel_exprs(load_dashboard())):
        concrete = expr.replace("$__rate_interval", "5m").replace("$job", ".+")
        lines += [f"      - record: dashboard:expr_{i}", f"        expr: {json.dumps(concrete)}"]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr


def series(name: str, labels: str, values: str) -> dict[str, str]:
    return {"series": f"{name}{{{JOB},{labels}}}", "values": values}


# Each case: alert name, input series (1 sample a minute), evaluation time, expected samples.
CASES: list[tuple[str, list[dict[str, str]], str, list[dict[str, Any]]]] = [
    (  # no 2xx series at all, contacts pending: fires
        "LeversNoSuccessWhilePending",
        [
            series("levers_pending_contacts", 'instance="a",batch_key="default:0"', "3x30"),
            series("levers_pending_contacts", 'instance="b",batch_key="default:0"', "3x30"),
            series("levers_requests_total", 'instance="a",status_class="5xx"', "0+2x30"),
        ],
        "15m",
        [{"labels": "{}", "value": 0}],
    ),
    (  # pending buffers empty but batches stuck in flight: fires
        "LeversNoSuccessWhilePending",
        [
            series("levers_pending_contacts", 'instance="a",batch_key="default:0"', "0x30"),
            series("levers_batches_in_flight", 'instance="a",state="queued"', "4x30"),
            series("levers_requests_total", 'instance="a",status_class="2xx"', "7x30"),
        ],
        "15m",
        [{"labels": "{}", "value": 0}],
    ),
    (  # requests succeed: quiet
        "LeversNoSuccessWhilePending",
        [
            series("levers_pending_contacts", 'instance="a",batch_key="default:0"', "3x30"),
            series("levers_requests_total", 'instance="a",status_class="2xx"', "0+1x30"),
        ],
        "15m",
        [],
    ),
    (  # nothing waiting: quiet
        "LeversNoSuccessWhilePending",
        [
            series("levers_pending_contacts", 'instance="a",batch_key="default:0"', "0x30"),
            series("levers_batches_in_flight", 'instance="a",state="queued"', "0x30"),
        ],
        "15m",
        [],
    ),
    (  # a reason's first dead letter (the series appears at 1) and later ones both count
        "LeversDeadLettersRising",
        [
            series(
                "levers_dead_letters_total", 'instance="a",reason="unknown_outcome"', "_x10 1x30"
            ),
            series(
                "levers_dead_letters_total", 'instance="a",reason="invalid_contact"', "0x10 4x30"
            ),
        ],
        "12m",
        [
            {"labels": '{reason="unknown_outcome"}', "value": 1},
            {"labels": '{reason="invalid_contact"}', "value": 4},
        ],
    ),
    (  # fifteen minutes later without new dead letters: quiet
        "LeversDeadLettersRising",
        [
            series(
                "levers_dead_letters_total", 'instance="a",reason="unknown_outcome"', "_x10 1x30"
            ),
            series(
                "levers_dead_letters_total", 'instance="a",reason="invalid_contact"', "0x10 4x30"
            ),
        ],
        "30m",
        [],
    ),
    (  # a producer sending opted-out numbers: refused at acceptance only (no dead letters yet)
        "LeversSuppressedNumbersRising",
        [
            series("levers_contacts_rejected_total", 'instance="a",reason="suppressed"', "0+10x30"),
            series(
                "levers_contacts_rejected_total", 'instance="b",reason="invalid_number"', "0x30"
            ),
        ],
        "20m",
        [{"labels": "{}", "value": 150}],
    ),
    (  # found at send time only, on two replicas
        "LeversSuppressedNumbersRising",
        [
            series("levers_dead_letters_total", 'instance="a",reason="suppressed"', "0+2x30"),
            series("levers_dead_letters_total", 'instance="b",reason="suppressed"', "0+2x30"),
        ],
        "20m",
        [{"labels": "{}", "value": 60}],
    ),
    (  # a few now and then, and an old burst that stopped: quiet
        "LeversSuppressedNumbersRising",
        [
            series("levers_contacts_rejected_total", 'instance="a",reason="suppressed"', "0+1x30"),
            series(
                "levers_dead_letters_total", 'instance="a",reason="suppressed"', "0+20x5 100x25"
            ),
        ],
        "25m",
        [],
    ),
    (
        "LeversPendingTooOld",
        [
            series("levers_pending_oldest_age_seconds", 'instance="a",batch_key="t:0"', "1x10"),
            series("levers_pending_oldest_age_seconds", 'instance="b",batch_key="t:0"', "1x10"),
            series("levers_pending_oldest_age_seconds", 'instance="a",batch_key="t:1"', "9x10"),
        ],
        "5m",
        [{"labels": '{batch_key="t:1"}', "value": 9}],
    ),
    (
        "LeversRateLimitPausedLong",
        [
            series("levers_rate_limit_paused", 'instance="a"', "1x10"),
            series("levers_rate_limit_paused", 'instance="b"', "1x10"),
        ],
        "5m",
        [{"labels": "{}", "value": 1}],
    ),
    (
        "LeversTokenFailures",
        [
            series("levers_token_failures_total", 'instance="a"', "0x5 2x10"),
            series("levers_token_failures_total", 'instance="b"', "0x15"),
        ],
        "8m",
        [{"labels": "{}", "value": 2}],
    ),
    (
        "LeversTokenFailures",
        [series("levers_token_failures_total", 'instance="a"', "3x30")],
        "20m",
        [],
    ),
    (
        "LeversWorkerDown",
        [
            {"series": f'up{{{JOB},instance="a:9191"}}', "values": "1x10"},
            {"series": f'up{{{JOB},instance="b:9191"}}', "values": "0x10"},
        ],
        "5m",
        [{"labels": f'up{{{JOB},instance="b:9191"}}', "value": 0}],
    ),
    (  # no target at all
        "LeversWorkerDown",
        [{"series": 'up{job="other"}', "values": "1x10"}],
        "5m",
        [{"labels": f"{{{JOB}}}", "value": 1}],
    ),
]


def test_alert_expressions_fire_when_they_should(tmp_path: Path) -> None:
    exprs = rule_exprs()
    tests = [
        {
            "interval": "1m",
            "input_series": input_series,
            "promql_expr_test": [
                {"expr": exprs[alert], "eval_time": eval_time, "exp_samples": expected}
            ],
        }
        for alert, input_series, eval_time, expected in CASES
    ]
    # JSON is YAML: promtool reads this file without a YAML writer here.
    unit_tests = tmp_path / "alerts_test.yml"
    unit_tests.write_text(json.dumps({"rule_files": [], "tests": tests}, indent=1))
    result = run_promtool("test", "rules", str(unit_tests))
    assert result.returncode == 0, result.stdout + result.stderr
