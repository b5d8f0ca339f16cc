"""A burst into a small Redis (`maxmemory`, `noeviction`) must not wedge the pipeline.

Producers are refused with `backlog_full` before Redis is full (worker/headroom.py), so the
worker can always append what was accepted, cut, send and finish. Ends with every accepted
contact sent exactly once, every refused one reported to its producer, and nothing given up
in dramatiq's `.XQ`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from producers.api import Producer
from tests.integration.conftest import State
from tests.integration.reconcile import settle
from tests.servers import RedisServer, wait_for
from tests.workers import WorkerProcess
from worker.admin.status import status_report
from worker.broker import BATCHES_QUEUE, CONTACTS_QUEUE
from worker.deadletters import DeadLetters
from worker.errors import BacklogFullError
from worker.sandbox import Sandbox
from worker.settings import Settings

pytestmark = pytest.mark.integration

MAXMEMORY = "16mb"
BURST = 40_000
CALL_SIZE = 2_000  # contacts per producer call: the burst is 20 calls in a row


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This module's own small Redis (overrides the session's)."""
    server = RedisServer(
        Path(tmp_path_factory.mktemp("redis-full")),
        args=["--maxmemory", MAXMEMORY, "--maxmemory-policy", "noeviction"],
    ).start()
    yield server
    server.stop()


def number(i: int) -> str:
    return f"+96655{i:07d}"


def burst(
    producer: Producer, start: int, count: int, size: int = CALL_SIZE
) -> tuple[set[str], set[str]]:
    """Enqueue `count` contacts in calls of `size`; returns (accepted, refused) numbers."""
    accepted: set[str] = set()
    refused: set[str] = set()
    for offset in range(start, start + count, size):
        batch = [number(i) for i in range(offset, offset + size)]
        result = producer.enqueue_contacts([{"number": n} for n in batch])
        assert {r.reason for r in result.rejected} <= {BacklogFullError.reason}
        accepted |= {batch[i] for i, _ in result.accepted}
        refused |= {batch[r.index] for r in result.rejected}
        assert len(result.accepted) + len(result.rejected) == len(batch)
    return accepted, refused


def test_a_burst_past_maxmemory_is_refused_early_and_the_rest_is_sent_once(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    settings: Settings,
    state: State,
    redis_client: redis.Redis,
) -> None:
    assert redis_client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    dead = DeadLetters(redis_client, state.keys)
    worker = start_worker(processes=1, threads=4)
    worker.wait_ready()

    accepted, refused = burst(producer, 0, BURST)
    # Past the limit: the producer was told, for part of the burst, and took the rest.
    assert refused, "the burst never reached the high-water mark"
    assert accepted, "nothing of the burst was accepted"

    result = settle(sandbox, dead, accepted, timeout=45)
    result.check(accepted)
    assert not result.dead, f"dead-lettered: {dict(result.dead_reasons)}"
    assert not set(result.received) & refused, "a refused contact was called"

    # Once the backlog is handled the mark no longer counts it: a producer is accepted again
    # (what sent contacts leave for the dedupe window, about 11 MB here, still counts).
    more, more_refused = burst(producer, BURST, 500, size=500)
    assert more and not more_refused
    settle(sandbox, dead, accepted | more, timeout=20).check(accepted | more)

    # Nothing is stuck anywhere, dramatiq's own dead-letter queues included.
    dramatiq_ns = state.keys.dramatiq
    for queue in (CONTACTS_QUEUE, BATCHES_QUEUE):
        assert redis_client.zcard(f"{dramatiq_ns}:{queue}.XQ") == 0, queue
    report = wait_for(
        lambda: (r := status_report(settings, redis_client))["backlog_contacts"] == 0 and r,
        10,
        what="an empty backlog",
    )
    assert report["queue_messages"] == {"queue": 0, "delayed": 0, "failed": 0}
    assert report["totals"]["contacts_sent"] == len(accepted | more)
    # Refused before Redis was full, never by Redis itself.
    memory = redis_client.info("memory")
    assert memory["used_memory_peak"] < memory["maxmemory"], memory["used_memory_peak_human"]
    assert worker.stop() == 0
