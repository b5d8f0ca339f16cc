"""RedisHealth says each change once and backs off; the filter holds back dramatiq's records
about a lost connection and nothing else."""

from __future__ import annotations

import logging

import pytest
import redis
from dramatiq.errors import ConnectionClosed

from tests.conftest import FakeClock
from worker.redis_health import ConnectionNoise, RedisHealth

REFUSED = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")


def record(
    name: str, msg: str, *args: object, exc: BaseException | None = None
) -> logging.LogRecord:
    info = (type(exc), exc, None) if exc else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, info)


def test_each_change_is_said_once(caplog: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    states: list[bool] = []
    health = RedisHealth("redis://x:6390/0", on_change=states.append, clock=clock)
    caplog.set_level(logging.INFO, "levers.redis")
    for _ in range(5):
        health.report(REFUSED)
        health.held_back()
    clock.advance(6.5)
    health.succeeded()
    health.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Redis unreachable at redis://x:6390/0: Error 111 connecting to 127.0.0.1:6390. "
        "Connection refused; retrying with backoff up to 2 s, quietly until it answers",
        "Redis is back at redis://x:6390/0 after 6.5 s (5 log lines about the outage held back)",
    ]
    assert states == [True, False, True]


def test_the_prober_backs_off_exponentially_up_to_the_cap() -> None:
    health = RedisHealth("r", first_delay=0.25, max_delay=2.0)
    assert [health.failed(REFUSED) for _ in range(6)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    health.succeeded()
    assert health.failed(REFUSED) == 0.25


def test_the_filter_holds_back_connection_noise_only() -> None:
    health = RedisHealth("r")
    noise = ConnectionNoise(health)
    consumer = "dramatiq.worker.ConsumerThread(levers.contacts)"
    lost = record(
        consumer, "Consumer encountered a connection error: %s", ConnectionClosed(REFUSED)
    )
    assert noise.filter(lost) is False and not health.up
    assert noise.filter(record(consumer, "Restarting consumer in %0.2f seconds.", 3.0)) is False
    failed = record(
        "dramatiq.worker.WorkerThread", "Failed to process message %s", "m", exc=REFUSED
    )
    assert noise.filter(failed) is False
    # Anything else passes: another error of dramatiq's, and every record of our own loggers.
    other = record("dramatiq.worker.WorkerThread", "Failed", exc=ValueError("boom"))
    assert noise.filter(other) is True
    assert noise.filter(record("levers.sender", "Redis down", exc=REFUSED)) is True
    health.succeeded()
    assert noise.filter(record(consumer, "Restarting consumer in %0.2f seconds.", 3.0)) is True
