"""SIGTERM: requests in flight finish, nothing new is cut, pending contacts stay for others."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from producers.api import Producer
from tests.integration.conftest import State
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.sandbox import Sandbox

pytestmark = pytest.mark.integration


def test_sigterm_finishes_requests_in_flight_and_leaves_pending_contacts(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    state: State,
) -> None:
    sandbox.configure(latency_seconds=1.0)
    worker = start_worker(1, 2, LEVERS_BATCH_MAX_SIZE="50", LEVERS_BATCH_MAX_WAIT_SECONDS="30")
    worker.wait_ready()
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(60)])
    wait_for(
        lambda: (
            "sending" in state.in_flight() and [p.pending for p in state.pending_status()] == [10]
        ),
        10,
        what="the full batch in flight and the other ten appended",
    )
    assert worker.stop() == 0
    # The request that was on the wire was answered and recorded, not left unknown.
    [request] = sandbox.accepted()
    assert len(request.body["contacts"]) == 50
    assert state.in_flight() == {}
    assert state.stats()["contacts_sent"] == 50
    # The other ten were not cut on the way out: they wait in Redis for the next worker.
    [pending] = state.pending_status()
    assert pending.pending == 10


def test_second_signal_stops_at_once(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    state: State,
) -> None:
    """The first SIGTERM waits for the request on the wire (20 s here); a second one kills the
    worker processes (SIGKILL) and the supervisor is gone within its 0.2 s watch loop: well
    inside 5 s, against 20 s for the graceful path."""
    sandbox.configure(latency_seconds=20.0)
    worker = start_worker(1, 2, LEVERS_BATCH_MAX_SIZE="10", LEVERS_REQUEST_TIMEOUT_SECONDS="60")
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(10)])
    wait_for(lambda: "sending" in state.in_flight(), 10, what="a batch in flight")
    assert worker.process is not None
    children = worker_processes(worker.process.pid)
    assert len(children) == 1, children
    worker.process.terminate()
    wait_for(lambda: worker.saw("finishing requests in flight"), 10, what="the first signal")
    assert worker.process.poll() is None and alive(children[0]), "the first signal stopped it"
    started = time.monotonic()
    worker.process.terminate()
    code = worker.process.wait(30)
    elapsed = time.monotonic() - started
    assert elapsed < SECOND_SIGNAL_SECONDS, f"the second signal took {elapsed:.1f}s"
    assert code != 0  # a forced stop is not a clean exit
    assert not alive(children[0]), "the worker process outlived its supervisor"
    assert worker.saw("stopping at once")
    # The request was abandoned on the wire: its batch is still marked sending, for the
    # lease and the unknown-outcome rule to settle (never sent again blindly).
    assert state.in_flight() == {"sending": 1}


SECOND_SIGNAL_SECONDS = 5.0


def worker_processes(supervisor: int) -> list[int]:
    """The supervisor's child processes (Linux /proc)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children]


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
