"""G4 across replicas: three worker processes share one request budget through Redis."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from producers.api import Producer
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.sandbox import Sandbox

pytestmark = pytest.mark.integration


def max_in_window(times: Sequence[float], window: float) -> int:
    """Most arrivals in any half-open window [t, t + window)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_three_processes_never_exceed_the_request_rate_and_use_most_of_it(
    sandbox: Sandbox, producer: Producer, start_worker: Callable[..., WorkerProcess]
) -> None:
    limit, batches = 5, 120
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(batches * 10)])
    for _ in range(3):
        start_worker(1, 4, LEVERS_BATCH_MAX_SIZE="10", LEVERS_MAX_REQUESTS_PER_SECOND=str(limit))
    wait_for(lambda: len(sandbox.accepted()) >= batches, 60, what=f"{batches} requests")
    times = [a.received_at for a in sandbox.stats().answers]
    assert len(times) == batches
    assert max_in_window(times, 1.0) <= limit
    achieved = (len(times) - 1) / (max(times) - min(times))
    assert achieved >= 0.9 * limit, f"only {achieved:.2f} requests/s of {limit}"


def test_a_429_with_retry_after_pauses_every_process(
    sandbox: Sandbox, producer: Producer, start_worker: Callable[..., WorkerProcess]
) -> None:
    sandbox.configure(retry_after_seconds=2)
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(400)])
    for _ in range(3):
        start_worker(1, 4, LEVERS_BATCH_MAX_SIZE="10", LEVERS_MAX_REQUESTS_PER_SECOND="10")
    wait_for(lambda: len(sandbox.accepted()) >= 5, 30, what="sending to start")
    sandbox.throttle_next(1)
    wait_for(lambda: len(sandbox.accepted()) >= 40, 60, what="sending to resume")
    answers = sandbox.stats().answers
    [throttle] = [a.received_at for a in answers if a.status == 429]
    after = sorted(a.received_at for a in answers if a.received_at > throttle)
    # A request already on its way when the 429 was answered may land just after it.
    assert all(t >= throttle + 2.0 for t in after if t > throttle + 0.05)
    assert after[-1] >= throttle + 2.0


def test_in_flight_cap_holds_across_processes(
    sandbox: Sandbox, producer: Producer, start_worker: Callable[..., WorkerProcess]
) -> None:
    sandbox.configure(latency_seconds=0.5)
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(120)])
    for _ in range(3):
        start_worker(
            1,
            4,
            LEVERS_BATCH_MAX_SIZE="10",
            LEVERS_MAX_REQUESTS_PER_SECOND="100",
            LEVERS_MAX_IN_FLIGHT="2",
        )
    wait_for(lambda: len(sandbox.accepted()) >= 12, 30, what="12 requests")
    arrivals = sorted(r.received_at for r in sandbox.accepted())
    # Each request is held 0.5 s: with two on the wire at most, any three arrivals span 0.5 s.
    assert min(c - a for a, c in zip(arrivals, arrivals[2:], strict=False)) >= 0.45
