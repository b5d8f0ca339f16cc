"""Log masking, JSON logs, the Redis-state collector and the health endpoints."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from tests.conftest import FakeClock
from worker import logs
from worker.buffers import BufferConfig, Buffers, KeyStatus
from worker.contacts import Contact
from worker.exposition import Endpoint, RedisStateCollector, fold_keys
from worker.holds import Holds
from worker.keys import Keys


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "levers_aggregate({'number': '+966501234567'})",
            "levers_aggregate({'number': '+96650*****67'})",
        ),
        ("national 0501234567", "national 05012***67"),
        ("spaced 050 123 4567", "spaced 050 12****67"),
        ("us (415) 555-2671", "us (415) ******71"),
    ],
)
def test_numbers_are_masked(text: str, masked: str) -> None:
    assert logs.mask_numbers(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "batch_id=c7fe1ab18e944421ad3318ffb4c9b46c",
        "message 12345678-1234-5678-1234-123456789012",
        "retrying in 24066 milliseconds",
        "on 2026-11-27 at 03:53:22",
    ],
)
def test_ids_durations_and_dates_are_left_alone(text: str) -> None:
    assert logs.mask_numbers(text) == text


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines_mask_numbers_in_message_fields_and_traceback(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("INFO", fmt)
    log = logging.getLogger("dramatiq.worker.WorkerThread")
    try:
        raise ValueError("bad contact +966501234567")
    except ValueError:
        log.exception(
            "Failed to process message %s",
            "levers_aggregate({'number': '+14155552671'})",
            extra={"number": "+442071838750"},
        )
    logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    for full in ("+966501234567", "+14155552671", "+442071838750"):
        assert full not in err
    assert "+96650*****67" in err and "+14155****71" in err
    if fmt == "json":
        entry = json.loads(err)
        assert entry["level"] == "ERROR" and "exception" in entry


def test_fold_keys_keeps_the_fullest_and_adds_up_the_rest() -> None:
    statuses = [KeyStatus(f"k{i}:0", pending=i, oldest_age_seconds=float(i)) for i in range(1, 6)]
    folded = fold_keys(statuses, 2)
    assert folded == [
        KeyStatus("k5:0", 5, 5.0),
        KeyStatus("k4:0", 4, 4.0),
        KeyStatus("other", 1 + 2 + 3, 3.0),
    ]


def test_collector_reads_shared_state_from_redis(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    buffers = Buffers(redis_client, Keys("o"), BufferConfig(batch_max_size=10), clock)
    buffers.append(Contact(number="+966501234567"), "m1")
    clock.advance(1.5)
    redis_client.set(buffers.keys.pause, "1", px=2500)
    registry = CollectorRegistry()
    holds = Holds(redis_client, Keys("o"), BufferConfig(), clock)
    registry.register(RedisStateCollector(buffers, holds, 20, 5.0))
    scrape = generate_latest(registry).decode()
    assert 'levers_pending_contacts{batch_key="default:0"} 1.0' in scrape
    assert "levers_backlog_contacts 1.0" in scrape
    assert 'levers_contacts_waiting{stage="pending"} 1.0' in scrape
    assert 'levers_contacts_held_now{reason="window_closed"} 0.0' in scrape
    assert "levers_held_oldest_age_seconds 0.0" in scrape
    assert 'levers_queue_messages{queue="levers.contacts.XQ"} 0.0' in scrape
    assert 'levers_pending_oldest_age_seconds{batch_key="default:0"} 1.5' in scrape
    assert "levers_rate_limit_paused 1.0" in scrape
    assert "levers_request_rate_limit 5.0" in scrape
    assert 'levers_queue_messages{queue="levers.contacts"} 0.0' in scrape


def test_health_and_readiness_endpoints() -> None:
    state = {"healthy": True, "problem": None}
    endpoint = Endpoint(
        0,
        CollectorRegistry(),
        lambda: bool(state["healthy"]),
        lambda: state["problem"],  # type: ignore[return-value]
        host="127.0.0.1",
    ).start()
    try:
        base = f"http://127.0.0.1:{endpoint.port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code == 200
        state.update(healthy=False, problem="Redis does not answer")
        assert httpx.get(f"{base}/healthz").status_code == 503
        answer = httpx.get(f"{base}/readyz")
        assert answer.status_code == 503 and "Redis does not answer" in answer.text
        assert httpx.get(f"{base}/metrics").status_code == 200
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        endpoint.stop()
