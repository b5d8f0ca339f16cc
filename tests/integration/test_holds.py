"""Holds with real worker processes: contacts held until their not_before are released by
whichever flusher looks first, each exactly once, and reach Levers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import pytest

from producers.api import Producer
from tests.integration.conftest import State
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.holds import Holds
from worker.sandbox import Sandbox

pytestmark = pytest.mark.integration


def test_two_workers_release_the_same_holds_and_call_each_number_once(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    state: State,
) -> None:
    env = {"LEVERS_BATCH_MAX_SIZE": "50", "LEVERS_BATCH_MAX_WAIT_SECONDS": "0.5"}
    first, second = start_worker(1, 4, **env), start_worker(1, 4, **env)
    first.wait_ready()
    second.wait_ready()
    release_at = time.time() + 4
    numbers = [f"+96655{i:07d}" for i in range(500)]
    result = producer.enqueue_contacts([{"number": n, "not_before": release_at} for n in numbers])
    assert len(result.accepted) == 500
    holds = Holds(state.client, state.keys, state.buffers.config)
    wait_for(lambda: holds.counts()["not_before"] == 500, 10, what="500 contacts held")
    assert sandbox.accepted() == []
    wait_for(
        lambda: sum(len(r.body["contacts"]) for r in sandbox.accepted()) >= 500,
        30,
        what="500 contacts sent",
    )
    wait_for(lambda: not state.in_flight(), 10, what="nothing in flight")
    sent = Counter(c["numberToCall"] for r in sandbox.accepted() for c in r.body["contacts"])
    assert set(sent) == set(numbers) and max(sent.values()) == 1
    first_request = min(r.received_at for r in sandbox.accepted())
    assert release_at <= first_request <= release_at + 1.0
    assert holds.counts()["not_before"] == 0
    assert state.stats()["contacts_released"] == 500
    # Full batches: released contacts are cut by size, not left to wait for their deadline.
    assert sorted(len(r.body["contacts"]) for r in sandbox.accepted()) == [50] * 10


def admin(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli_admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_operator_lists_releases_and_expires_holds(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    worker_env: dict[str, str],
    state: State,
) -> None:
    tomorrow = time.time() + 86400
    kept = producer.enqueue_contact("+966551234567", not_before=tomorrow)
    dropped = producer.enqueue_contact("+966551234568", not_before=tomorrow)
    start_worker(1, 2, LEVERS_BATCH_MAX_WAIT_SECONDS="0.2").wait_ready()
    holds = Holds(state.client, state.keys, state.buffers.config)
    wait_for(lambda: holds.counts()["not_before"] == 2, 10, what="two holds")

    listed = admin(["holds", "list"], worker_env)
    assert listed.returncode == 0, listed.stderr
    assert kept in listed.stdout and "+96655*****67" in listed.stdout
    assert "+966551234567" not in listed.stdout  # masked unless --json
    status = admin(["status"], worker_env)
    assert "not_before=2" in status.stdout and "next release" in status.stdout

    refused = admin(["holds", "release", "--id", kept], worker_env)
    assert refused.returncode == 2 and "--note" in refused.stderr
    released = admin(
        ["holds", "release", "--id", kept, "--note", "asked to call today"], worker_env
    )
    assert released.returncode == 0 and "released 1" in released.stdout, released.stderr
    [request] = wait_for(sandbox.accepted, 10, what="the released contact's request")
    assert [c["numberToCall"] for c in request.body["contacts"]] == ["+966551234567"]

    expired = admin(["holds", "expire", "--id", dropped, "--note", "campaign over"], worker_env)
    assert expired.returncode == 0 and "expired 1" in expired.stdout
    assert holds.counts()["not_before"] == 0
    letters = admin(["dead-letters", "list", "--json"], worker_env)
    [letter] = [json.loads(line) for line in letters.stdout.splitlines()]
    assert letter["reason"] == "expired" and "campaign over" in letter["detail"]
    missing = admin(["holds", "expire", "--id", dropped, "--note", "again"], worker_env)
    assert missing.returncode == 1 and "not held" in missing.stderr
