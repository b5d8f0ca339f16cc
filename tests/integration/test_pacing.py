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
