"""Reads the operator files in deploy/ and the metrics they may use (docs/metrics.md).

A helper for tests/test_deploy_files.py, not a test module. The alert rules are YAML, read here
with a regex instead of a YAML parser: the file is a flat list of rules, and `expr:` is either
one line or a `|`/`>` block scalar.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "levers-batcher.json"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
METRICS_DOC = ROOT / "docs" / "metrics.md"

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_NAME = re.compile(r"\b(?:levers|dramatiq)_[a-z0-9_]+\b")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RULE_KEY = re.compile(r"^(?P<indent>\s*)(?:-\s+)?(?P<key>alert|record|expr):\s*(?P<value>.*)$")
_BLOCK_SCALAR = re.compile(r"^[|>][-+]?\d*\s*(?:#.*)?$")
_TABLE_NAME = re.compile(r"^`([a-z0-9_]+)`$")
_BACKTICKED = re.compile(r"`((?:levers|dramatiq)_[a-z0-9_]+)`")


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def _walk_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _walk_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_exprs(item)


def template_queries(dashboard: dict[str, Any]) -> list[str]:
    """The queries of the dashboard's query variables (`definition` and `query`)."""
    queries: list[str] = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        for text in (variable.get("definition"), query):
            if isinstance(text, str) and text:
                queries.append(text)
    return queries


def dashboard_exprs(dashboard: dict[str, Any] | None = None) -> list[str]:
    """Every `expr` of the dashboard, at any depth (panels, rows, annotations)."""
    return list(_walk_exprs(load_dashboard() if dashboard is None else dashboard))


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        unquoted: str = json.loads(value)
        return unquoted
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def rule_exprs(text: str | None = None) -> dict[str, str]:
    """`expr` of each rule of the rules file, by alert (or record) name."""
    lines = (ALERT_RULES.read_text(encoding="utf-8") if text is None else text).splitlines()
    exprs: dict[str, str] = {}
    name: str | None = None
    i = 0
    while i < len(lines):
        match = _RULE_KEY.match(lines[i])
        i += 1
        if match is None:
            continue
        value = match["value"].strip()
        if match["key"] != "expr":
            name = _unquote(value)
            continue
        indent = len(match["indent"])
        body: list[str] = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            body.append(lines[i])
            i += 1
        if _BLOCK_SCALAR.match(value):
            expr = "\n".join(line.strip() for line in body).strip()
        else:
            expr = " ".join([_unquote(value), *(line.strip() for line in body)]).strip()
        if name is None:
            raise ValueError(f"{ALERT_RULES}: an expr without a rule name: {expr!r}")
        exprs[name] = expr
        name = None
    return exprs


def names_in(expr: str) -> set[str]:
    """Metric names in a PromQL expression; quoted label values and matchers are left out."""
    bare = _MATCHERS.sub("{}", _STRING.sub('""', expr))
    return set(_NAME.findall(bare))


def metric_names_used() -> set[str]:
    """Every metric sample name in the dashboard's expressions and template variable queries,
    and in the alert rules' expressions."""
    dashboard = load_dashboard()
    exprs = [*dashboard_exprs(dashboard), *template_queries(dashboard), *rule_exprs().values()]
    names: set[str] = set()
    for expr in exprs:
        names |= names_in(expr)
    return names


def documented_metrics() -> dict[str, str]:
    """Metrics of docs/metrics.md by name: the backticked first column of its tables, with the
    type column when there is one (the Redis gauges' table has none), plus dramatiq's own
    metrics named in backticks in its prose section (type unknown: "")."""
    metrics: dict[str, str] = {}
    header: list[str] | None = None
    section = ""
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            section = line.lstrip("#").strip()
            header = None
            continue
        if not line.startswith("|"):
            header = None
            if section.startswith("dramatiq"):
                for name in _BACKTICKED.findall(line):
                    metrics.setdefault(name, "")
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        match = _TABLE_NAME.match(cells[0])
        if match is None:
            continue
        kind = cells[header.index("type")] if "type" in header else "gauge"
        metrics[match[1]] = kind
    return metrics


def documented_samples() -> set[str]:
    """The sample names a query may use: a histogram only as `_bucket`, `_sum` or `_count`, any
    other metric by its own name; dramatiq's (type not documented) either way."""
    samples: set[str] = set()
    for name, kind in documented_metrics().items():
        if kind != "histogram":
            samples.add(name)
        if kind in ("histogram", ""):
            samples.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return samples


def strip_histogram_suffix(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
