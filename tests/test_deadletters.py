"""Dead letters: select, replay through the producer, purge, retention."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from producers.api import Producer
from tests.conftest import FakeClock
from tests.servers import RedisServer
from worker.broker import CONTACTS_QUEUE
from worker.deadletters import DeadLetters, replay_row
from worker.keys import Keys
from worker.settings import Settings

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"


def record(index: int, reason: str, number: str = "+966501234567") -> dict[str, object]:
    return {
        "id": f"b1:{index}",
        "reason": reason,
        "batch_id": "b1",
        "batch_key": f"{TEMPLATE}:1",
        "contact_id": f"m{index}",
        "contact": {"numberToCall": number, "firstName": "Sara", "promptTags": {"a": "1"}},
        "status": None,
        "detail": "",
        "attempts": 1,
        "at": 0,
    }


@pytest.fixture
def dead(redis_client: redis.Redis, clock: FakeClock) -> DeadLetters:
    letters = DeadLetters(redis_client, Keys("d"), clock)
    for i, reason in enumerate(["unknown_outcome", "invalid_contact", "unknown_outcome"]):
        redis_client.hset(letters.keys.dead, f"b1:{i}", json.dumps(record(i, reason)))
        redis_client.zadd(letters.keys.dead_index, {f"b1:{i}": int(clock() * 1000) + i})
    return letters


@pytest.fixture
def producer(redis_server: RedisServer) -> Iterator[Producer]:
    producer = Producer(Settings.from_env({"REDIS_URL": redis_server.url, "LEVERS_NAMESPACE": "d"}))
    yield producer
    producer.close()


def test_select_filters_by_reason_and_keeps_time_order(dead: DeadLetters) -> None:
    assert [r["id"] for r in dead.select(reason="unknown_outcome")] == ["b1:0", "b1:2"]
    assert [r["id"] for r in dead.select(ids=["b1:1"])] == ["b1:1"]
    assert list(dead.select(batch_key="default:0")) == []


def test_replay_row_restores_the_producer_fields() -> None:
    assert replay_row(record(4, "unknown_outcome")) == {
        "number": "+966501234567",
        "first_name": "Sara",
        "prompt_tags": {"a": "1"},
        "template_id": TEMPLATE,
        "update_existing": True,
        "dedupe_key": "replay:b1:4",
    }


def test_replay_enqueues_and_removes_only_the_replayed(
    dead: DeadLetters, producer: Producer, redis_client: redis.Redis
) -> None:
    result = dead.replay(list(dead.select(reason="unknown_outcome")), producer.enqueue_contacts)
    assert result.replayed == ["b1:0", "b1:2"] and result.refused == []
    assert dead.ids() == ["b1:1"]
    queue = f"{producer.broker.namespace}:{CONTACTS_QUEUE}"
    assert redis_client.llen(queue) == 1  # one message carrying both contacts


def test_purge_and_retention(dead: DeadLetters, clock: FakeClock) -> None:
    assert dead.delete(["b1:1"]) == 1
    assert dead.count() == 2
    clock.advance(100)
    assert dead.expire(retention_seconds=200) == 0
    assert dead.expire(retention_seconds=99.99) == 2
    assert dead.count() == 0
