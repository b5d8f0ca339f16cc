"""`levers-worker` answers the common first-hour mistakes in one line: bad options and
variables, a taken metrics port (exit 2), and wrong credentials (it keeps running, /readyz
answers 503 until they work)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest

from tests.commands import clean_env, no_traceback, run
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.sandbox import Sandbox

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--processes", "-1", "--threads", "0"], {}, "argument --processes: -1 is below 1"),
        (["--threads", "0"], {}, "argument --threads: 0 is below 1"),
        (["--send-threads", "two"], {}, "'two' is not a whole number"),
        ([], {"REDIS_URL": "foo://bar"}, "REDIS_URL='foo://bar': must start with redis://"),
        ([], {"LEVERS_API_TOKEN": ""}, "no Levers credentials: set LEVERS_API_TOKEN"),
    ],
)
def test_refused_at_start_in_one_line(args: list[str], env: dict[str, str], message: str) -> None:
    base = {"LEVERS_API_TOKEN": "token", "LEVERS_METRICS_PORT": "0"}
    result = run("levers-worker", args, clean_env(**{**base, **env}))
    no_traceback(result)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("levers-worker: "), result.stderr


def test_admin_refuses_a_bad_redis_url_and_an_absent_redis_in_one_line() -> None:
    bad = run("levers-admin", ["status"], clean_env(REDIS_URL="foo://bar"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "levers-admin: invalid configuration: REDIS_URL='foo://bar'" in bad.stderr
    down = run("levers-admin", ["status"], clean_env(REDIS_URL="redis://127.0.0.1:1/0"))
    no_traceback(down)
    assert down.returncode == 2 and down.stderr.count("\n") == 1
    assert "levers-admin: cannot reach Redis at redis://127.0.0.1:1/0" in down.stderr


def test_a_taken_metrics_port_names_the_variable_and_the_port(
    worker_env: dict[str, str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            "levers-worker", ["--processes", "1"], {**worker_env, "LEVERS_METRICS_PORT": str(port)}
        )
    no_traceback(result)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"cannot serve metrics on port {port} (LEVERS_METRICS_PORT={port})" in result.stderr
    assert "already in use" in result.stderr


def test_wrong_credentials_are_said_once_and_readyz_waits_for_them(
    sandbox: Sandbox,
    worker_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    worker = start_worker(processes=1, threads=2, LEVERS_CLIENT_SECRET="rotated-secret")
    worker.wait_ready()
    auth_url = f"{sandbox.url}/auth/v1/api-key/auth"
    said = f"Levers credentials do not work: POST {auth_url} answered HTTP 401"
    wait_for(lambda: worker.saw(said), 20, what="the credentials line")
    readyz = f"http://127.0.0.1:{worker_env['LEVERS_METRICS_PORT']}/readyz"
    for _ in range(3):
        answer = httpx.get(readyz, timeout=5)
        assert answer.status_code == 503
        assert f"no Levers token: POST {auth_url} answered HTTP 401" in answer.text
    assert worker.process is not None and worker.process.poll() is None, "the worker stopped"

    # The account is put right (here: the sandbox now takes that secret): no restart needed.
    sandbox.configure(client_secret="rotated-secret")
    wait_for(
        lambda: httpx.get(readyz, timeout=5).status_code == 200, 20, what="/readyz to turn 200"
    )
    # The line is written before the 200; reading it from the pipe may take a moment longer.
    wait_for(lambda: worker.saw("Levers credentials work again"), 10, what="the recovery line")
    with worker._lock:
        lines = [line for _, line in worker.lines]
    assert sum(said in line for line in lines) == 1, "the failure was said more than once"
    assert not any("Traceback" in line for line in lines)
