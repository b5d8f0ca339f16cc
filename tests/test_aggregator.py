"""The aggregator and the flusher as plain objects, on a real redis-server with a fake clock."""

from __future__ import annotations

import json

import redis

from tests.conftest import FakeClock
from worker.aggregator import Aggregator, Flusher
from worker.keys import Keys
from worker.metrics import Metrics
from worker.store import BatchStore, StoreConfig


def build(
    client: redis.Redis, clock: FakeClock, max_size: int = 2
) -> tuple[BatchStore, list[str], Aggregator, Flusher]:
    store = BatchStore(client, Keys("a"), StoreConfig(batch_max_size=max_size), clock)
    queued: list[str] = []
    metrics = Metrics()
    aggregator = Aggregator(store, queued.append, metrics, default_region="SA")
    flusher = Flusher(store, queued.append, metrics, clock=clock)
    return store, queued, aggregator, flusher


def test_invalid_contact_is_recorded_with_its_reason(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store, queued, aggregator, _ = build(redis_client, clock)
    assert aggregator.handle({"number": "+96612341234"}, "m1") == [None]
    assert aggregator.handle("not an object", "m2") == [None]
    assert store.stats() == {"rejected_invalid_number": 1, "rejected_invalid_field": 1}
    newest, oldest = (json.loads(r) for r in redis_client.lrange(store.keys.rejects, 0, -1))
    assert oldest["contact_id"] == "m1" and oldest["reason"] == "invalid_number"
    assert newest["contact_id"] == "m2"
    assert queued == [] and store.pending_status() == []


def test_national_number_uses_the_default_region(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store, _, aggregator, _ = build(redis_client, clock)
    [result] = aggregator.handle({"number": "050 123 4567"}, "m1")
    assert result is not None and result.status == "appended"
    assert store.pending_status()[0].pending == 1


def test_size_cut_queues_the_batch(redis_client: redis.Redis, clock: FakeClock) -> None:
    store, queued, aggregator, _ = build(redis_client, clock)
    aggregator.handle({"number": "+966501234567"}, "m1")
    [result] = aggregator.handle({"number": "+966501234568"}, "m2")
    assert result is not None and queued == [result.batch_id]
    assert store.batch(queued[0])["trigger"] == "size"


def test_flusher_cuts_only_overdue_batches_and_requeues_stranded_ones(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store, queued, aggregator, flusher = build(redis_client, clock, max_size=10)
    aggregator.handle({"number": "+966501234567"}, "m1")
    assert flusher.cut_due() == 0
    clock.advance(store.config.batch_max_wait_seconds)
    assert flusher.cut_due() == 1
    [batch_id] = queued
    # This enqueue_batch never marked the batch queued (as if the process died right after
    # the cut): after the outbox grace, the reaper queues it again.
    assert flusher.reap() == 0
    clock.advance(store.config.outbox_grace_seconds)
    assert flusher.reap() == 1
    assert queued == [batch_id, batch_id]


def test_a_chunk_is_appended_in_one_go_and_idempotent_on_redelivery(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store, queued, aggregator, _ = build(redis_client, clock, max_size=3)
    chunk = [
        {"number": "+966501234561"},
        {"number": "not a number"},
        {"number": "+966501234562"},
        {"number": "+966501234563"},
        {"number": "+966501234564"},
    ]
    results = aggregator.handle(chunk, "msg")
    assert [r.status if r else None for r in results] == [
        "appended",
        None,
        "appended",
        "appended",
        "appended",
    ]
    assert len(queued) == 1  # the third valid contact filled a batch of 3
    assert store.stats()["rejected_unparseable_number"] == 1
    # dramatiq delivers the same message again: nothing is appended twice.
    again = aggregator.handle(chunk, "msg")
    assert [r.status if r else None for r in again] == [
        "redelivered",
        None,
        "redelivered",
        "redelivered",
        "redelivered",
    ]
    assert [s.pending for s in store.pending_status()] == [1]
    contact_ids = [item[0] for item in json.loads(store.batch(queued[0])["contacts"])]
    assert contact_ids == ["msg:0", "msg:2", "msg:3"]
