"""`levers-ingest` and `demo --ingest` as real processes, driven as a person would."""

from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.integration.ingest.conftest import TOKEN
from tests.servers import RedisServer, free_port, wait_for

pytestmark = pytest.mark.integration


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEVERS_", "PROMETHEUS_"))}
    env.update(extra)
    return env


def test_levers_ingest_refuses_to_start_without_tokens(redis_server: RedisServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "producers.ingest.cli"],
        env=clean_env(REDIS_URL=redis_server.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "LEVERS_INGEST_TOKENS" in lines[0]


def test_a_bad_token_setting_is_named_and_not_echoed(redis_server: RedisServer) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "producers.ingest.cli"],
        env=clean_env(REDIS_URL=redis_server.url, LEVERS_INGEST_TOKENS="short-secret"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "LEVERS_INGEST_TOKENS" in done.stderr and "short-secret" not in done.stderr


def test_levers_ingest_serves_and_stops_on_sigterm(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    token_file = tmp_path / "tokens"
    token_file.write_text(f"{TOKEN}\nsecond-token-abcdefghijkl\n")
    env = clean_env(
        REDIS_URL=redis_server.url,
        LEVERS_NAMESPACE="cli-test",
        LEVERS_INGEST_TOKENS_FILE=str(token_file),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "not-for-the-ingest"),
    )
    with (tmp_path / "ingest.log").open("w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "producers.ingest.cli",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{url}/readyz"), 30, what="levers-ingest to be ready")
        answer = httpx.post(
            f"{url}/v1/contacts",
            json={"numberToCall": "+966501234567"},
            headers={"Authorization": "Bearer second-token-abcdefghijkl"},
        )
        assert answer.status_code == 202
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        # Its metrics stay in its own registry, not in a worker's multiprocess directory.
        assert not (tmp_path / "not-for-the-ingest").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_the_demo_can_be_driven_by_curl(redis_server: RedisServer) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "worker.demo", "--ingest"],
        # A port of its own: another run of this test on the machine may hold 8088.
        env=clean_env(REDIS_URL=redis_server.url, LEVERS_INGEST_PORT=str(free_port())),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=drain, daemon=True).start()
    seen: list[str] = []

    def next_line_with(text: str) -> str:
        def look() -> str | None:
            while not lines.empty():
                seen.append(lines.get())
                if text in seen[-1]:
                    return seen[-1]
            return None

        return wait_for(look, 60, what=f"the demo to print {text!r}: {seen[-5:]}")

    try:
        curl = next_line_with("curl -sS ")
        # Run the printed command as a shell would parse it, with httpx instead of curl.
        argv = shlex.split(curl.replace("$(date +%s%N)", "demo-test-1"))
        url = next(a for a in argv if a.startswith("http"))
        headers = dict(argv[i + 1].split(": ", 1) for i, a in enumerate(argv) if a == "-H")
        body = argv[argv.index("-d") + 1]
        answer = httpx.post(url, content=body, headers=headers, timeout=30)
        assert answer.status_code == 202, answer.text
        assert [c["status"] for c in answer.json()["contacts"]] == [
            "accepted",
            "accepted",
            "rejected",
        ]
        printed = [next_line_with("sandbox received")]
        if "2 contacts" not in printed[0]:  # the two have different templates
            printed.append(next_line_with("sandbox received"))
        assert re.search(r"\+96650\*+6[78]", " ".join(printed))
        # The console it printed opens with the login it printed, and shows what was sent.
        console = next(line for line in seen if "The operator console:" in line)
        found = re.search(r"(http://\S+/console) \(user (\S+), password (\S+)\)", console)
        assert found, console
        address, user, password = found.groups()
        with httpx.Client(timeout=30) as browser:
            login = browser.post(address + "/login", data={"user": user, "password": password})
            assert login.status_code == 303, login.text
            overview = browser.get(address)
            assert overview.status_code == 200 and "Recent operator actions" in overview.text
        os.killpg(demo.pid, signal.SIGINT)
        assert demo.wait(60) == 0
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(10)
        assert demo.stdout is not None
        demo.stdout.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
