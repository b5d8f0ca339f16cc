"""G4 across replicas: three worker processes share one request budget through Redis."""

from __future__ import annotations

import itertools
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
    # The workers are running before the contacts come: started with a backlog waiting, the
    # first starts sending while the others are still importing (a second of CPU each on two
    # cores), which delays its first requests by more than the jitter margin. What is measured
    # here is the pacer across running replicas.
    workers = [
        start_worker(1, 4, LEVERS_BATCH_MAX_SIZE="10", LEVERS_MAX_REQUESTS_PER_SECOND=str(limit))
        for _ in range(3)
    ]
    for worker in workers:
        worker.wait_ready()
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(batches * 10)])
    wait_for(lambda: len(sandbox.accepted()) >= batches, 60, what=f"{batches} requests")
    times = [a.received_at for a in sandbox.stats().answers]
    assert len(times) == batches
    gaps = [round((b - a) * 1000) for a, b in itertools.pairwise(sorted(times))]
    assert max_in_window(times, 1.0) <= limit, f"gaps between requests (ms): {gaps}"
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


@pytest.mark.waits_on_the_clock
def test_contacts_per_minute_holds_in_every_window_and_is_used(
    sandbox: Sandbox, producer: Producer, start_worker: Callable[..., WorkerProcess]
) -> None:
    limit, size = 300, 50
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(8 * size)])
    for _ in range(2):
        start_worker(
            1,
            4,
            LEVERS_BATCH_MAX_SIZE=str(size),
            LEVERS_MAX_REQUESTS_PER_SECOND="5",
            LEVERS_MAX_CONTACTS_PER_MINUTE=str(limit),
        )
    wait_for(lambda: len(sandbox.accepted()) >= 8, 90, interval=0.2, what="8 requests")
    arrivals = sorted(r.received_at for r in sandbox.accepted())
    gaps = [round(t - arrivals[0], 3) for t in arrivals]
    for start in arrivals:
        in_window = sum(size for t in arrivals if start <= t < start + 60)
        assert in_window <= limit, gaps
    # The seventh request goes as soon as the first has left the window (kept over 61 s),
    # not much later.
    assert 60.0 <= arrivals[6] - arrivals[0] <= 62.5, gaps


@pytest.mark.waits_on_the_clock
def test_adaptive_mode_finds_an_unknown_limit(
    sandbox: Sandbox, producer: Producer, start_worker: Callable[..., WorkerProcess]
) -> None:
    # Levers' real limit is 5/s; the operator only knows it is somewhere below 20.
    sandbox.configure(rate_limit_per_second=5, retry_after_seconds=1)
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(3000)])
    for _ in range(2):
        start_worker(
            1,
            4,
            LEVERS_BATCH_MAX_SIZE="10",
            LEVERS_MAX_REQUESTS_PER_SECOND="20",
            LEVERS_ADAPTIVE_RATE="true",
        )
    wait_for(lambda: len(sandbox.accepted()) >= 5, 30, what="sending to start")
    start = min(r.received_at for r in sandbox.accepted())
    wait_for(
        lambda: any(a.received_at > start + 50 for a in sandbox.stats().answers),
        90,
        interval=0.5,
        what="50 s of sending",
    )
    settled = [a for a in sandbox.stats().answers if start + 30 <= a.received_at <= start + 50]
    throttled = sum(1 for a in settled if a.status == 429)
    assert throttled / len(settled) < 0.05, f"{throttled} of {len(settled)} answered 429"
    # It converged near the limit, not to a crawl.
    assert len(settled) / 20 >= 0.6 * 5
