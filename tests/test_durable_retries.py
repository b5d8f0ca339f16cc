"""A retry is never lost to a Redis outage: dramatiq's Retries would log the failed enqueue and
ack the original once Redis is back (the message gone); DurableRetries waits for Redis first."""

from __future__ import annotations

from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.stub import StubBroker

from worker import durable_retries


class OutageBroker(StubBroker):
    """A stub broker whose first `failures` delayed enqueues (retries) find Redis away."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        if delay is not None and self.failures > 0:
            self.failures -= 1
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
        return super().enqueue(message, delay=delay)


def run_once_failing(broker: OutageBroker) -> list[int]:
    calls: list[int] = []

    @dramatiq.actor(
        broker=broker,
        queue_name="contacts",
        retry_when=lambda n, e: True,
        min_backoff=1,
        max_backoff=10,
    )
    def aggregate(n: int) -> None:
        calls.append(n)
        if len(calls) == 1:
            raise RuntimeError("Redis is not answering")

    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        aggregate.send(7)
        broker.join("contacts", timeout=10_000)
        worker.join()
    finally:
        worker.stop()
    return calls


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable_retries, "FIRST_WAIT_SECONDS", 0.01)


def test_a_retry_waits_for_redis_and_the_message_runs_again() -> None:
    broker = OutageBroker(failures=3)
    durable_retries.install(broker)
    assert run_once_failing(broker) == [7, 7]
    assert broker.failures == 0


def test_dramatiqs_own_retries_lose_the_message_in_the_same_outage() -> None:
    # What DurableRetries is for: the same outage, dramatiq's middleware, one run only.
    broker = OutageBroker(failures=3)
    assert run_once_failing(broker) == [7]


def test_it_takes_the_place_and_options_of_dramatiqs_retries() -> None:
    broker = StubBroker()
    before = [type(m).__name__ for m in broker.middleware]
    durable = durable_retries.install(broker)
    after = [type(m).__name__ for m in broker.middleware]
    assert after == [n if n != "Retries" else "DurableRetries" for n in before]
    assert isinstance(durable, durable_retries.DurableRetries)
    with pytest.raises(RuntimeError):
        durable_retries.install(broker)  # nothing left to replace


def test_the_workers_broker_has_it() -> None:
    from worker.broker import build_broker
    from worker.settings import Settings

    settings = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/0"})
    broker = build_broker(settings, client=redis.Redis(port=1))
    assert any(isinstance(m, durable_retries.DurableRetries) for m in broker.middleware)
