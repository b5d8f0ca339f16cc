"""The README's "Run it yourself" block, typed line by line into bash as a user would: only
the ports (8080, 9191) are swapped for free ones, and Redis and the namespace come from the
environment, as the README says they do."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.servers import RedisServer, free_port, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Run it yourself", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "no bash block under Run it yourself"
    return [line for line in block.group(1).splitlines() if line.strip()]


class Shell:
    """One bash, fed a line at a time; each line's exit status is echoed after it."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.output = log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            ["bash", "--norc"],
            stdin=subprocess.PIPE,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            text=True,
            start_new_session=True,
        )
        self.steps = 0

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def type(self, line: str) -> int:
        assert self.process.stdin is not None
        self.steps += 1
        marker = f"@@step {self.steps} "
        self.process.stdin.write(f'{line}\necho "{marker}$?"\n')
        self.process.stdin.flush()
        found = wait_for(
            lambda: re.search(re.escape(marker) + r"(\d+)", self.text()), 120, what=line
        )
        return int(found.group(1))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.output.close()


def test_run_it_yourself_as_written(redis_server: RedisServer, tmp_path: Path) -> None:
    sandbox_port, metrics_port = free_port(), free_port()
    lines = [
        line.replace("8080", str(sandbox_port)).replace("9191", str(metrics_port))
        for line in readme_block()
    ]
    assert len(lines) == 5
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEVERS_", "PROMETHEUS_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        REDIS_URL=redis_server.url,
        LEVERS_NAMESPACE=f"readme-{uuid.uuid4().hex[:8]}",
        LEVERS_METRICS_PORT=str(metrics_port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    shell = Shell(tmp_path, env, tmp_path / "session.log")
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    try:
        assert shell.type(lines[0]) == 0
        wait_for(lambda: "export LEVERS_CLIENT_SECRET=" in shell.text(), 30, what="the banner")
        printed = re.findall(r"^  export (LEVERS_\w+=\S+)$", shell.text(), re.MULTILINE)
        assert len(printed) == 3 and all(p in lines[1].split() for p in printed), printed

        assert shell.type(lines[1]) == 0
        assert shell.type(lines[2]) == 0
        readyz = f"http://127.0.0.1:{metrics_port}/readyz"
        wait_for(lambda: _status(readyz) == 200, 60, what="the worker to be ready")

        assert shell.type(lines[3]) == 1  # some rows were rejected
        text = shell.text()
        assert "examples/contacts.csv: 5 rows, 3 accepted, 2 rejected" in text
        assert "line 4: unparseable_number" in text and "line 6: invalid_number" in text
        assert "warning" not in text
        wait_for(
            lambda: (
                httpx.get(f"{sandbox}/_sandbox/stats", timeout=5).json()["accepted_contacts"] == 3
            ),
            30,
            what="three contacts at the sandbox",
        )

        before = len(shell.text())
        assert shell.type(lines[4]) == 0
        shown = shell.text()[before:]
        assert re.search(r"^  contacts_sent\s+3$", shown, re.MULTILINE), shown
        stats = json.loads(shown[shown.index("{") : shown.rindex("}") + 1])
        assert stats["accepted_contacts"] == 3

        assert shell.type("kill %1 %2; wait") == 0
    finally:
        shell.close()


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0
