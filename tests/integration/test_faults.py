"""Fault tests: killed workers, a failing and throttling API, dropped answers, refused
contacts, a restarted Redis. Each ends with a reconciliation (see reconcile.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from producers.api import Producer
from tests.integration.conftest import State
from tests.integration.reconcile import settle
from tests.servers import RedisServer, wait_for
from tests.workers import FAST_RECOVERY, WorkerProcess
from worker.deadletters import INVALID_CONTACT, UNKNOWN_OUTCOME, DeadLetters
from worker.keys import Keys
from worker.sandbox import Sandbox
from worker.settings import Settings

pytestmark = pytest.mark.integration


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+96655{start + i:07d}" for i in range(count)]


def rows(batch: list[str]) -> list[dict[str, object]]:
    templates = [None, "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"]
    return [
        {"number": n, "template_id": templates[i % 2], "first_name": "Test"}
        for i, n in enumerate(batch)
    ]


def enqueue(producer: Producer, batch: list[str]) -> set[str]:
    result = producer.enqueue_contacts(rows(batch))
    assert result.rejected == []
    return set(batch)


@pytest.fixture
def dead(settings: Settings, redis_client: redis.Redis) -> DeadLetters:
    return DeadLetters(redis_client, Keys(settings.namespace))


def test_a_workers_killed_and_restarted_lose_and_double_nothing(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    dead: DeadLetters,
    state: State,
) -> None:
    sandbox.configure(latency_seconds=0.2)
    env = {**FAST_RECOVERY, "LEVERS_BATCH_MAX_SIZE": "50", "LEVERS_MAX_REQUESTS_PER_SECOND": "10"}
    workers = [start_worker(1, 4, **env), start_worker(1, 4, **env)]
    accepted: set[str] = set()
    for kill in range(14):
        if kill < 10:
            accepted |= enqueue(producer, numbers(500, kill * 500))
        # Kill the older worker while some request is on the wire (or soon after).
        wait_for(lambda: "sending" in state.in_flight(), 20, what="a request in flight")
        workers.pop(0).kill()
        workers.append(start_worker(1, 4, **env))
    result = settle(sandbox, dead, accepted, timeout=120)
    result.check(accepted)
    assert len(accepted) == 5000
    # Whatever was not sent was dead-lettered only because a worker died mid-request.
    assert set(result.dead_reasons) <= {UNKNOWN_OUTCOME}


def test_b_throttled_and_failing_api_gets_everything_and_retry_after_is_honoured(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    dead: DeadLetters,
) -> None:
    sandbox.configure(fail_rate=0.10, rate_429=0.05, retry_after_seconds=1, seed=3)
    accepted = enqueue(producer, numbers(1500))
    start_worker(2, 4, LEVERS_BATCH_MAX_SIZE="20", LEVERS_MAX_REQUESTS_PER_SECOND="10")
    result = settle(sandbox, dead, accepted, timeout=120)
    result.check(accepted)
    assert result.dead == {}, "every contact must get through 503s and 429s"
    answers = sandbox.stats().answers
    throttles = [a.received_at for a in answers if a.status == 429]
    assert throttles and any(a.status == 503 for a in answers)
    for t in throttles:
        # Every replica paused for Retry-After: no request arrived in the second after a 429
        # (a request already on the wire when it was answered may land in the first 50 ms).
        early = [a for a in answers if t + 0.05 < a.received_at < t + 1.0]
        assert not early, f"{len(early)} requests inside Retry-After of the 429 at {t}"


def test_c_dropped_answers_are_unknown_outcomes_and_not_resent(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    dead: DeadLetters,
) -> None:
    sandbox.configure(drop_rate=0.3, seed=5)
    accepted = enqueue(producer, numbers(600))
    start_worker(1, 4, LEVERS_BATCH_MAX_SIZE="20", LEVERS_MAX_REQUESTS_PER_SECOND="50")
    result = settle(sandbox, dead, accepted, timeout=60)
    result.check(accepted)
    dropped = {
        c["numberToCall"] for r in sandbox.accepted() if r.dropped for c in r.body["contacts"]
    }
    assert dropped, "the sandbox dropped nothing: the test proves nothing"
    assert set(result.dead) == dropped
    assert set(result.dead_reasons) == {UNKNOWN_OUTCOME}


def test_d_one_refused_contact_in_fifty(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    dead: DeadLetters,
) -> None:
    batch = numbers(50)
    sandbox.configure(reject_numbers=frozenset({batch[17]}))
    result = producer.enqueue_contacts([{"number": n} for n in batch])
    assert len(result.accepted) == 50
    start_worker(1, 2, LEVERS_BATCH_MAX_SIZE="50")
    reconciliation = settle(sandbox, dead, set(batch), timeout=30)
    reconciliation.check(set(batch))
    assert sum(reconciliation.answered.values()) == 49
    [letter] = dead.select()
    assert letter["contact"]["numberToCall"] == batch[17]
    assert letter["reason"] == INVALID_CONTACT
    assert letter["detail"] == "number refused by the sandbox"


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "aof-redis", appendonly=True).start()
    yield server
    server.stop()


def test_e_redis_restarted_mid_run_loses_nothing(
    sandbox: Sandbox,
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    aof_redis: RedisServer,
) -> None:
    own = Settings.from_env({"REDIS_URL": aof_redis.url, "LEVERS_NAMESPACE": settings.namespace})
    producer = Producer(own)
    client = redis.Redis.from_url(aof_redis.url)
    dead = DeadLetters(client, Keys(settings.namespace))
    try:
        accepted = enqueue(producer, numbers(2000))
        start_worker(
            2,
            4,
            REDIS_URL=aof_redis.url,
            LEVERS_BATCH_MAX_SIZE="20",
            LEVERS_MAX_REQUESTS_PER_SECOND="20",
            **FAST_RECOVERY,
        )
        wait_for(lambda: len(sandbox.accepted()) >= 10, 30, what="sending to start")
        aof_redis.restart()
        result = settle(sandbox, dead, accepted, timeout=120)
        result.check(accepted)
        assert set(result.dead_reasons) <= {UNKNOWN_OUTCOME}
    finally:
        producer.close()
        client.close()


@pytest.mark.waits_on_the_clock
def test_f_a_long_429_storm_never_strands_a_batch(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    state: State,
) -> None:
    """Sixty 429s in a row, then success: the batch's record alone decides its retries, so no
    retry count of dramatiq's gives up on it, and it is sent one Retry-After after the storm."""
    storm, retry_after = 60, 1.0
    sandbox.configure(retry_after_seconds=retry_after)
    sandbox.throttle_next(storm)
    producer.enqueue_contact("+966551234567")
    start_worker(1, 2, LEVERS_BATCH_MAX_WAIT_SECONDS="0.1")
    [sent] = wait_for(sandbox.accepted, storm * retry_after + 30, interval=0.1, what="the batch")
    answers = sandbox.stats().answers
    throttles = [a.received_at for a in answers if a.status == 429]
    assert len(throttles) == storm
    assert sent.received_at - max(throttles) <= retry_after + 0.5
    assert state.stats()["contacts_sent"] == 1
    assert state.in_flight() == {}
