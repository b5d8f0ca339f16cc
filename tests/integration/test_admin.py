"""`levers-admin` as an operator runs it: filters that cannot match are refused naming what
exists, listings tell apart numbers masked alike, and status --json matches the text."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from producers.api import Producer
from tests.commands import no_traceback, run
from tests.integration.conftest import State
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.deadletters import DeadLetters
from worker.sandbox import Sandbox

pytestmark = pytest.mark.integration

# Both mask to +96650*****67.
TWINS = ("+966501234567", "+966509876567")


def test_dead_letters_and_status(
    sandbox: Sandbox,
    producer: Producer,
    state: State,
    worker_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    sandbox.configure(reject_numbers=list(TWINS))
    result = producer.enqueue_contacts([{"number": n} for n in (*TWINS, "+447911123456")])
    ids = dict(zip((*TWINS, "+447911123456"), (i for _, i in result.accepted), strict=True))
    start_worker(processes=1, threads=2).wait_ready()
    dead = DeadLetters(state.client, state.keys)
    wait_for(lambda: dead.count() == 2, 30, what="two dead letters")

    listed = run("levers-admin", ["dead-letters", "list"], worker_env)
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if "+96650*****67" in line]
    assert len(rows) == 2
    assert {ids[TWINS[0]], ids[TWINS[1]]} == {
        next(w for w in row.split() if w in (ids[TWINS[0]], ids[TWINS[1]])) for row in rows
    }
    assert "+966501234567" not in listed.stdout

    refusals = {
        ("list", "--reason", "nope"): [
            "unknown reason 'nope'",
            "unknown_outcome, retries_exhausted, rejected_by_levers, invalid_contact, expired",
            "held: invalid_contact (2)",
        ],
        ("replay", "--id", "no-such-id"): ["no dead letter with id no-such-id; 2 held"],
        ("purge", "--batch-key", "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10:0"): [
            "has batch key '0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10:0'",
            "batch keys held: default:0 (2)",
        ],
    }
    for args, expected in refusals.items():
        refused = run("levers-admin", ["dead-letters", *args], worker_env)
        no_traceback(refused)
        assert refused.returncode == 1, (args, refused.stderr)
        for text in expected:
            assert text in refused.stderr, (args, refused.stderr)
    assert dead.count() == 2, "a refused command changed something"
    unfiltered = run("levers-admin", ["dead-letters", "purge"], worker_env)
    assert unfiltered.returncode == 2 and "needs --reason, --batch-key, --id or --all" in (
        unfiltered.stderr
    )

    text = run("levers-admin", ["status"], worker_env)
    as_json = run("levers-admin", ["status", "--json"], worker_env)
    assert text.returncode == as_json.returncode == 0
    report = json.loads(as_json.stdout)
    shown = dict(re.findall(r"^  (\w+)\s+(\d+)$", text.stdout, re.MULTILINE))
    for name, value in {**report["totals"], **report["rejected"]}.items():
        assert shown[name] == str(value), name
    assert report["totals"]["contacts_merged"] == 0 and "contacts_merged" in shown
    assert report["rejected"]["invalid_name"] == 0 and "invalid_name" in shown
    assert report["totals"]["contacts_dead"] == 2 and report["dead_letters"] == 2
    assert f"dead letters held: {report['dead_letters']}" in text.stdout
    assert f"pending contacts: {report['pending_contacts']}" in text.stdout
