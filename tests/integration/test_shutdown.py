"""SIGTERM: requests in flight finish, nothing new is cut, pending contacts stay for others."""

from __future__ import annotations

import time
from collections.abc import Callable

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
    sandbox.configure(latency_seconds=20.0)
    worker = start_worker(1, 2, LEVERS_BATCH_MAX_SIZE="10", LEVERS_REQUEST_TIMEOUT_SECONDS="60")
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(10)])
    wait_for(lambda: "sending" in state.in_flight(), 10, what="a batch in flight")
    assert worker.process is not None
    worker.process.terminate()
    wait_for(lambda: worker.saw("finishing requests in flight"), 10, what="the first signal")
    started = time.monotonic()
    worker.process.terminate()
    code = worker.process.wait(15)
    assert time.monotonic() - started < 15
    assert code != 0  # a forced stop is not a clean exit
