"""The do-not-call list, frequency caps and the brakes, with real worker processes and the
commands an operator types."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from producers.api import Producer
from tests.integration.conftest import State
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.holds import Holds
from worker.sandbox import Sandbox

pytestmark = pytest.mark.integration

TEMPLATE_A = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
TEMPLATE_B = "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"


def admin(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli_admin", *args],
        env={**env, "LEVERS_OPERATOR": "ops@test"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def numbers_sent(sandbox: Sandbox) -> Counter[str]:
    return Counter(c["numberToCall"] for r in sandbox.accepted() for c in r.body["contacts"])


def test_the_do_not_call_list_from_the_command_line(
    worker_env: dict[str, str], producer: Producer, tmp_path: Path
) -> None:
    added = admin(
        ["suppress", "add", "0501234567", "--region", "SA", "--note", "opted out"], worker_env
    )
    assert added.returncode == 0 and "suppressed 1 numbers (1 new)" in added.stdout, added.stderr
    result = producer.enqueue_contacts([{"number": "+966501234567"}, {"number": "+966501234568"}])
    assert [r.reason for r in result.rejected] == ["suppressed"] and len(result.accepted) == 1

    listed = admin(["suppress", "list"], worker_env)
    assert "+96650*****67" in listed.stdout and "+966501234567" not in listed.stdout
    assert "opted out" in listed.stdout

    upload = tmp_path / "opt-outs.csv"
    upload.write_text("number,source\n+966551234567,sms\nnot a number,web\n", encoding="utf-8")
    imported = admin(["suppress", "import", str(upload), "--note", "weekly file"], worker_env)
    assert (
        imported.returncode == 1 and "suppressed 1 new numbers; 1 lines refused" in imported.stdout
    )
    assert "line 3" in imported.stdout
    exported = admin(["suppress", "export"], worker_env)
    assert {json.loads(line)["number"] for line in exported.stdout.splitlines()} == {
        "+966501234567",
        "+966551234567",
    }
    removed = admin(["suppress", "remove", "+966501234567", "--note", "asked again"], worker_env)
    assert removed.returncode == 0 and "removed 1 of 1" in removed.stdout
    status = admin(["status"], worker_env)
    assert "suppressed numbers: 1" in status.stdout
    assert "ops@test suppress remove +96650*****67: asked again" in status.stdout


def test_two_workers_racing_one_number_against_a_cap_of_one_a_day(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    worker_env: dict[str, str],
    state: State,
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[default]\nwindow = "always"\n[caps]\nlimits = [{calls = 1, period = "1d"}]\n',
        encoding="utf-8",
    )
    env = {
        "LEVERS_POLICY_FILE": str(policy),
        "LEVERS_DEFAULT_WINDOW": "",  # the file names the window
        "LEVERS_BATCH_MAX_SIZE": "20",
    }
    numbers = [f"+96655{i:07d}" for i in range(200)]
    # Each number for two templates: two batch keys, so both can be cut and sent at once.
    rows = [{"number": n, "template_id": t} for n in numbers for t in (TEMPLATE_A, TEMPLATE_B)]
    assert len(producer.enqueue_contacts(rows).accepted) == 400
    start_worker(1, 4, **env)
    start_worker(1, 4, **env)
    holds = Holds(state.client, state.keys, state.buffers.config)
    wait_for(
        lambda: sum(numbers_sent(sandbox).values()) + holds.counts()["frequency_capped"] >= 400,
        60,
        what="every contact sent or held by its cap",
    )
    wait_for(lambda: not state.in_flight(), 10, what="nothing in flight")
    sent = numbers_sent(sandbox)
    assert set(sent) == set(numbers) and max(sent.values()) == 1
    assert holds.counts()["frequency_capped"] == 200


def test_pause_during_a_backlog_and_resume_send_everything_once(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    worker_env: dict[str, str],
    state: State,
) -> None:
    numbers = [f"+96655{i:07d}" for i in range(600)]
    producer.enqueue_contacts([{"number": n, "template_id": TEMPLATE_A} for n in numbers])
    start_worker(1, 4, LEVERS_BATCH_MAX_SIZE="20", LEVERS_MAX_REQUESTS_PER_SECOND="10")
    wait_for(lambda: len(sandbox.accepted()) >= 3, 20, what="sending to start")
    paused = admin(["pause", "--template", TEMPLATE_A, "--note", "wrong script"], worker_env)
    assert paused.returncode == 0 and f"paused {TEMPLATE_A}" in paused.stdout
    # A request whose slot was taken before the pause may still go: wait for quiet.
    wait_for(lambda: not state.in_flight().get("sending"), 10, what="requests in flight done")
    during = len(sandbox.accepted())
    status = admin(["status"], worker_env)
    assert f"paused templates: {TEMPLATE_A}" in status.stdout and "wrong script" in status.stdout
    waiting = state.client.hget(state.keys.gauges, "batches:queued")
    assert int(waiting or 0) > 0
    assert len(sandbox.accepted()) == during, "a request left while the template was paused"
    resumed = admin(["resume", "--template", TEMPLATE_A, "--note", "fixed"], worker_env)
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    wait_for(lambda: sum(numbers_sent(sandbox).values()) >= 600, 60, what="all 600 sent")
    sent = numbers_sent(sandbox)
    assert set(sent) == set(numbers) and max(sent.values()) == 1


def test_cancel_then_replay(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    worker_env: dict[str, str],
    state: State,
) -> None:
    # Queued with no worker yet: the cancel must reach contacts still in dramatiq's queue.
    numbers = [f"+96655{i:07d}" for i in range(120)]
    producer.enqueue_contacts([{"number": n, "template_id": TEMPLATE_B} for n in numbers])
    cancelled = admin(["cancel", "--template", TEMPLATE_B, "--note", "withdrawn"], worker_env)
    assert cancelled.returncode == 0 and "3 queued messages marked" in cancelled.stdout
    start_worker(1, 2, LEVERS_BATCH_MAX_WAIT_SECONDS="0.2")
    dead = lambda: json.loads(admin(["status", "--json"], worker_env).stdout)["dead_letters"]  # noqa: E731
    wait_for(lambda: dead() == 120, 20, what="120 cancelled dead letters")
    assert sandbox.accepted() == []
    replayed = admin(["dead-letters", "replay", "--reason", "cancelled"], worker_env)
    assert replayed.returncode == 0 and "replayed 120" in replayed.stdout, replayed.stderr
    wait_for(lambda: sum(numbers_sent(sandbox).values()) >= 120, 30, what="the replay sent")
    assert set(numbers_sent(sandbox)) == set(numbers)
