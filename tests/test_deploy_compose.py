"""deploy/compose.yaml and what it mounts, checked without Docker: the Compose specification's
JSON schema (check-jsonschema), Prometheus' own config check (promtool), and the properties
the stack promises: a Redis that keeps and never evicts, two workers scraped one by one, the
sandbox only in the rehearsal, settings that exist and hold valid values."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_container import (
    COMPOSE,
    DEPLOY,
    PROMETHEUS_CONFIG,
    duration_seconds,
    interpolate,
    interpolated_names,
    load_compose,
    read_env_file,
    required_names,
    uses_our_image,
)
from tests.deploy_manifests import (
    ALERT_RULES,
)
from tests.deploy_settings import (
    secret_of,
    settings_source,
    variable_problem,
)
from tests.test_deploy_files import promtool
from worker.settings import Settings

REHEARSAL_ENV = DEPLOY / "rehearsal.env"
ENV_EXAMPLE = DEPLOY / "env.example"


def check_jsonschema() -> str:
    beside = Path(sys.executable).with_name("check-jsonschema")
    path = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    if path is None:
        pytest.fail("check-jsonschema is missing: pip install -e '.[test]'")
    return path


def validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    # The Compose specification's schema ships inside check-jsonschema: no network needed.
    return subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def services() -> dict[str, Any]:
    compose = load_compose()
    found: dict[str, Any] = compose["services"]
    return found


def environment(service: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """A service's environment with compose's interpolation applied (rehearsal.env's values)."""
    values = read_env_file(REHEARSAL_ENV) if env is None else env
    raw = services()[service].get("environment", {})
    return {name: interpolate(str(value), values) for name, value in raw.items()}


def test_compose_file_matches_the_compose_specification() -> None:
    result = validate_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  worker:\n    image: x\n    restart_policy: always\n")
    result = validate_compose(broken)
    assert result.returncode != 0
    assert "restart_policy" in result.stdout + result.stderr


def test_redis_keeps_every_write_and_never_evicts() -> None:
    redis = services()["redis"]
    command = " ".join(redis["command"])
    for needle in ("--appendonly yes", "--maxmemory-policy noeviction", "--maxmemory "):
        assert needle in command, needle
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "--requirepass" in command and "/run/secrets/redis_password" in command


def test_two_workers_each_scraped_on_its_own_port() -> None:
    worker = services()["worker"]
    assert worker["deploy"]["replicas"] == 2
    # Published ports would clash between replicas; Prometheus reaches each one inside.
    assert "ports" not in worker
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "levers-batcher"]
    [sd] = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["type"] == "A"
    assert str(sd["port"]) == environment("worker")["LEVERS_METRICS_PORT"]


def test_prometheus_loads_the_alert_rules_it_is_given() -> None:
    prometheus = services()["prometheus"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    assert mounts["./prometheus/alerts.yml"] == "/etc/prometheus/alerts.yml"
    assert mounts["./prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert config["rule_files"] == ["alerts.yml"]  # relative to the config: /etc/prometheus
    assert (PROMETHEUS_CONFIG.parent / "alerts.yml") == ALERT_RULES
    result = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_is_provisioned_with_the_dashboard_and_the_data_source() -> None:
    grafana = services()["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    target = Path(mounts["./grafana/levers-batcher.json"])
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "levers-batcher.yml").read_text())[
        "providers"
    ]
    assert Path(provider["options"]["path"]) == target.parent
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    # The dashboard's panels name ${DS_PROMETHEUS}; without an import step only a data-source
    # variable of that name resolves it.
    dashboard = yaml.safe_load((DEPLOY / "grafana" / "levers-batcher.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"


def test_ingest_and_sandbox_run_from_the_same_image() -> None:
    found = services()
    assert found["ingest"]["entrypoint"] == ["levers-ingest"]
    assert found["sandbox"]["entrypoint"] == ["levers-sandbox"]
    assert found["sandbox"]["profiles"] == ["rehearsal"]
    assert all("profiles" not in found[name] for name in ("redis", "worker", "ingest"))
    for name in ("worker", "ingest", "sandbox"):
        assert uses_our_image(found[name]), name
        assert found[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    # The image's HEALTHCHECK asks the worker's port; the others ask their own.
    assert "8088/healthz" in found["ingest"]["healthcheck"]["test"][-1]
    assert "8080/" in found["sandbox"]["healthcheck"]["test"][-1]
    sandbox_args = found["sandbox"]["command"]
    assert sandbox_args[sandbox_args.index("--host") + 1] == "0.0.0.0"
    rehearsal = read_env_file(REHEARSAL_ENV)
    assert rehearsal["COMPOSE_PROFILES"] == "rehearsal"
    port = sandbox_args[sandbox_args.index("--port") + 1]
    assert rehearsal["LEVERS_BASE_URL"] == f"http://sandbox:{port}"
    assert rehearsal["LEVERS_CLIENT_ID"] == "sandbox-client"  # the sandbox's default


def test_every_variable_is_a_setting_of_ours() -> None:
    problems = {
        (name, service): problem
        for service, spec in services().items()
        if uses_our_image(spec)
        for name in spec.get("environment", {})
        if (problem := variable_problem(name))
    }
    assert not problems, problems


def test_variable_check_refuses_what_nothing_reads() -> None:
    assert variable_problem("LEVERS_BATCH_MAX_SIZE") is None
    assert variable_problem("LEVERS_CLIENT_SECRET_FILE") is None
    assert variable_problem("LEVERS_BATCH_SIZE") is not None  # a typo
    assert variable_problem("LEVERS_CLIENT_ID_FILE") is not None  # not a secret setting


@pytest.mark.parametrize("service", ["worker", "ingest"])
def test_configured_values_are_accepted_by_settings(service: str, tmp_path: Path) -> None:
    for env_file in (REHEARSAL_ENV, ENV_EXAMPLE):
        values = read_env_file(env_file)
        values["LEVERS_CLIENT_ID"] = values["LEVERS_CLIENT_ID"] or "a-client-id"  # to fill in
        Settings.from_env(settings_source(environment(service, values), tmp_path))


def test_secrets_are_files_that_the_FILE_variables_name() -> None:
    compose = load_compose()
    for name, spec in services().items():
        mounted = set(spec.get("secrets", []))
        env = spec.get("environment", {})
        named = {
            str(value).removeprefix("/run/secrets/")
            for key, value in env.items()
            if secret_of(key) or key.endswith("__FILE")  # Grafana's own *__FILE variables
        }
        assert named <= mounted, (name, named - mounted)
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/"), secret  # deploy/secrets/ is ignored by git
    assert "deploy/secrets/" in (DEPLOY.parent / ".gitignore").read_text()


def test_every_interpolated_variable_is_in_the_env_files() -> None:
    compose = load_compose()
    example, rehearsal = read_env_file(ENV_EXAMPLE), read_env_file(REHEARSAL_ENV)
    # A user learns every knob from env.example; the rehearsal needs nothing filled in.
    assert interpolated_names(compose) <= set(example), interpolated_names(compose) - set(example)
    assert required_names(compose) <= {k for k, v in rehearsal.items() if v}


def test_interpolation_follows_compose() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert interpolate("${A} ${B:-two} ${EMPTY:-x} $$HOME", env) == "1 two x $HOME"
    with pytest.raises(KeyError, match="set it"):
        interpolate("${MISSING:?set it}", env)


def test_worker_stop_grace_covers_a_send_in_flight(tmp_path: Path) -> None:
    worker = services()["worker"]
    settings = Settings.from_env(settings_source(environment("worker"), tmp_path))
    needed = (
        settings.send_lease_seconds
        + settings.connect_timeout_seconds
        + settings.request_timeout_seconds
    )
    assert duration_seconds(worker["stop_grace_period"]) >= needed
    assert duration_seconds("1m30s") == 90 and duration_seconds("180s") == 180


def test_the_policy_file_is_mounted_where_the_setting_points() -> None:
    for name in ("worker", "ingest"):
        spec = services()[name]
        path = spec["environment"]["LEVERS_POLICY_FILE"]
        [mount] = [v for v in spec["volumes"] if isinstance(v, dict) and v["target"] == path]
        source = COMPOSE.parent / mount["source"]
        tomllib.loads(source.read_text(encoding="utf-8"))
        assert mount["read_only"] is True
    tmpfs = [v for v in services()["worker"]["volumes"] if isinstance(v, dict)]
    metrics_dir = Path(environment("worker")["PROMETHEUS_MULTIPROC_DIR"])
    assert any(v["type"] == "tmpfs" and Path(v["target"]) in metrics_dir.parents for v in tmpfs)
