"""The commands the deploy files give, run for real without Docker: a levers-worker started with
the Kubernetes ConfigMap's settings, probed the way the image's HEALTHCHECK and the pod's
probes probe it, and stopped the way Kubernetes stops it."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from tests.deploy_container import healthcheck_command, read_env_file
from tests.deploy_manifests import BASE
from tests.deploy_settings import LIBRARY_VARIABLES, PENDING_SETTINGS
from tests.servers import wait_for
from tests.workers import WorkerProcess

pytestmark = pytest.mark.integration

# Where this machine's test Redis, sandbox and free port replace the cluster's.
LOCAL = {"REDIS_URL", "LEVERS_NAMESPACE", "LEVERS_BASE_URL", "LEVERS_METRICS_PORT"}


def run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = healthcheck_command()
    assert command[0] == "python"
    return subprocess.run(
        [sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30
    )


def status(port: str, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_worker_with_the_configmap_settings_passes_the_image_healthcheck_and_stops_cleanly(
    worker_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    configured = {
        name: value
        for name, value in read_env_file(BASE / "settings.env").items()
        if name not in LOCAL and name not in PENDING_SETTINGS and name not in LIBRARY_VARIABLES
    }
    assert "LEVERS_SEND_LEASE_SECONDS" in configured  # the file was read
    # The ConfigMap's policy file, where this checkout has it (the pod mounts it elsewhere).
    assert configured["LEVERS_POLICY_FILE"] == "/etc/levers/policy/policy.toml"
    configured["LEVERS_POLICY_FILE"] = str(BASE / "policy.toml")
    configured["LEVERS_DEFAULT_WINDOW"] = ""  # the policy file names the window
    worker = start_worker(2, 2, **configured)
    worker.wait_ready()
    port = worker_env["LEVERS_METRICS_PORT"]
    probe_env = {"PATH": worker_env.get("PATH", ""), "LEVERS_METRICS_PORT": port}
    result = wait_for(
        lambda: (r := run_healthcheck(probe_env)).returncode == 0 and r,
        15,
        what="the image's HEALTHCHECK command to pass",
    )
    assert result.stderr == ""
    assert status(port, "/healthz") == 200  # the liveness probe
    assert wait_for(lambda: status(port, "/readyz") == 200, 15, what="/readyz")  # readiness
    # Kubernetes' SIGTERM: a clean stop exits 0, so a rolling update is not counted a crash.
    assert worker.stop(timeout=60) == 0
    assert run_healthcheck(probe_env).returncode != 0  # and the check sees it gone
