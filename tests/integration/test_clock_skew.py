"""One clock for every replica: workers whose hosts' clocks are 2 s fast and 2 s slow still
share one request budget and cut batches on time, because every time is Redis's own."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from producers.api import Producer
from tests.integration.test_pacing import max_in_window
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.sandbox import Sandbox

pytestmark = pytest.mark.integration

SKEWED = str(Path(__file__).resolve().parent.parent / "skewed_clock")


def skewed(seconds: float) -> dict[str, str]:
    return {"PYTHONPATH": SKEWED, "SKEWED_CLOCK_SECONDS": str(seconds)}


def test_the_clock_moves_in_a_skewed_process(tmp_path: Path) -> None:
    """The test's own lever works: a process started that way reads a clock 2 s fast."""
    import os
    import subprocess
    import sys

    env = {**os.environ, **skewed(2.0)}
    out = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(out.stdout) - time.time() == pytest.approx(2.0, abs=0.5)


def test_skewed_replicas_hold_the_rate_and_cut_on_time(
    sandbox: Sandbox, producer: Producer, start_worker: Callable[..., WorkerProcess]
) -> None:
    limit, batches, max_wait = 5, 40, 1.0
    env = {
        "LEVERS_BATCH_MAX_SIZE": "10",
        "LEVERS_MAX_REQUESTS_PER_SECOND": str(limit),
        "LEVERS_BATCH_MAX_WAIT_SECONDS": str(max_wait),
    }
    fast = start_worker(1, 4, **env, **skewed(+2.0))
    slow = start_worker(1, 4, **env, **skewed(-2.0))
    fast.wait_ready()
    slow.wait_ready()

    # A lone contact: its batch is cut by whichever flusher looks first, never early (a clock
    # 2 s fast would cut it at once) and never late (one 2 s slow would cut it 2 s late).
    enqueued = time.time()
    producer.enqueue_contact("+966551234567")
    [lone] = wait_for(sandbox.accepted, max_wait + 5, what="the lone contact's batch")
    assert max_wait - 0.05 <= lone.received_at - enqueued <= max_wait + 0.5

    # A backlog: both replicas send, and no second sees more than the limit.
    sandbox.reset()
    producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(batches * 10)])
    wait_for(lambda: len(sandbox.accepted()) >= batches, 60, what=f"{batches} requests")
    times = sorted(a.received_at for a in sandbox.stats().answers)
    assert len(times) == batches
    assert max_in_window(times, 1.0) <= limit
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved >= 0.9 * limit, f"only {achieved:.2f} requests/s of {limit}"
    assert fast.saw("batch sent") and slow.saw("batch sent"), "both replicas took part"
