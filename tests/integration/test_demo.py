"""`./scripts/demo` with no arguments: the whole product end to end, outcomes included."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.servers import RedisServer

pytestmark = pytest.mark.integration


def test_the_demo_sends_every_contact_and_prints_the_outcomes_per_template(
    redis_server: RedisServer,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEVERS_", "PROMETHEUS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "worker.demo"],
        env={**env, "REDIS_URL": redis_server.url},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "1000 of 1000 accepted contacts reached the sandbox" in out
    assert "call outcomes per template" in out
    rows = re.findall(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)  ", out, re.MULTILINE)
    templates = {row[0] for row in rows}
    assert templates == {
        "default",
        "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10",
        "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5",
    }
    assert sum(int(row[1]) for row in rows) == 1000
    # A contact with a not_before is shown held, then released and sent once.
    held = out[out.index("$ levers-admin holds list") :]
    assert re.search(r"\+96655\*+01\s+not_before\s", held), held
    assert "1 held contacts shown" in held
    assert re.search(r"released when due: \+96655\*+01 reached the sandbox [\d.]+ s after", held)
    assert all(int(calls) == int(ok) + int(failed) for _, calls, ok, failed in rows)
    assert "1000 of 1000 calls reported ended" in out
