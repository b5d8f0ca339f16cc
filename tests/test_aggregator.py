"""The aggregator and the flusher as plain objects, on a real redis-server with a fake clock."""

from __future__ import annotations

import json

import redis
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker

from producers.api import Producer
from tests.conftest import FakeClock, tokens
from tests.servers import RedisServer
from worker.aggregator import Aggregator, Flusher
from worker.backlog import QueuedContacts, read_backlog, read_totals
from worker.buffers import BufferConfig, Buffers
from worker.contacts import ContactRules, mask_number
from worker.keys import Keys
from worker.metrics import Metrics
from worker.outbox import Outbox, OutboxConfig
from worker.rejects import Rejects
from worker.settings import Settings


class Store:
    """The rooms an aggregator and a flusher work with, for looking at them in tests."""

    def __init__(self, client: redis.Redis, clock: FakeClock, broker: StubBroker, size: int):
        self.client = client
        self.keys = Keys("a")
        self.broker = broker
        self.buffers = Buffers(client, self.keys, BufferConfig(batch_max_size=size), clock)
        self.outbox = Outbox(client, self.keys, OutboxConfig(), broker, clock)

    def queued(self) -> list[str]:
        return tokens(self.broker)

    def stats(self) -> dict[str, int]:
        return read_totals(self.client, self.keys)


def build(
    client: redis.Redis, clock: FakeClock, max_size: int = 2
) -> tuple[Store, StubBroker, Aggregator, Flusher]:
    broker = StubBroker()
    broker.declare_queue("levers.batches")
    store = Store(client, clock, broker, max_size)
    metrics = Metrics()
    aggregator = Aggregator(
        store.buffers,
        store.outbox,
        Rejects(client, store.keys, clock=clock),
        QueuedContacts(client, store.keys),
        metrics,
        ContactRules(default_region="SA"),
    )
    flusher = Flusher(store.buffers, store.outbox, metrics)
    return store, broker, aggregator, flusher


def test_invalid_contact_is_recorded_with_its_reason(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store, _, aggregator, _ = build(redis_client, clock)
    assert aggregator.handle({"number": "+96612341234"}, "m1") == [None]
    assert aggregator.handle("not an object", "m2") == [None]
    assert store.stats() == {"rejected_invalid_number": 1, "rejected_invalid_field": 1}
    newest, oldest = (json.loads(r) for r in redis_client.lrange(store.keys.rejects, 0, -1))
    assert oldest["contact_id"] == "m1" and oldest["reason"] == "invalid_number"
    assert newest["contact_id"] == "m2"
    # The number is kept masked, and the list does not live for ever.
    assert "+96612341234" not in json.dumps(oldest)
    assert mask_number("+96612341234") in oldest["payload"]
    assert oldest["at"] == clock()
    assert 0 < redis_client.ttl(store.keys.rejects) <= 7 * 86400
    assert store.queued() == [] and store.buffers.pending_status() == []


def test_national_number_uses_the_default_region(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store, _, aggregator, _ = build(redis_client, clock)
    [result] = aggregator.handle({"number": "050 123 4567"}, "m1")
    assert result is not None and result.status == "appended"
    assert store.buffers.pending_status()[0].pending == 1


def test_size_cut_queues_the_batch(redis_client: redis.Redis, clock: FakeClock) -> None:
    store, _, aggregator, _ = build(redis_client, clock)
    aggregator.handle({"number": "+966501234567"}, "m1")
    [result] = aggregator.handle({"number": "+966501234568"}, "m2")
    assert result is not None and store.queued() == [result.batch_id]
    batch = store.outbox.batch(result.batch_id)
    assert batch["trigger"] == "size" and batch["state"] == "queued"


def test_flusher_cuts_only_overdue_batches_and_requeues_stranded_ones(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store, _, aggregator, flusher = build(redis_client, clock, max_size=10)
    aggregator.handle({"number": "+966501234567"}, "m1")
    assert flusher.cut_due() == (0, store.buffers.config.batch_max_wait_seconds)
    clock.advance(store.buffers.config.batch_max_wait_seconds)
    assert flusher.cut_due()[0] == 1
    [batch_id] = store.queued()
    # Its token is lost (as if the process died right after queueing it): after the requeue
    # time, the reaper gives it another.
    assert flusher.reap()[0] == 0
    clock.advance(store.outbox.config.requeue_after_seconds)
    assert flusher.reap()[0] == 1
    assert store.queued() == [batch_id]


def test_a_chunk_is_appended_in_one_go_and_idempotent_on_redelivery(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store, _, aggregator, _ = build(redis_client, clock, max_size=3)
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
    queued = store.queued()
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
    assert [s.pending for s in store.buffers.pending_status()] == [1]
    contact_ids = [item[0] for item in json.loads(store.outbox.batch(queued[0])["contacts"])]
    assert contact_ids == ["msg:0", "msg:2", "msg:3"]


def test_queued_contacts_are_counted_in_by_the_producer_and_out_once_by_the_aggregator(
    redis_client: redis.Redis, clock: FakeClock, redis_server: RedisServer
) -> None:
    store, _, aggregator, _ = build(redis_client, clock, max_size=100)
    settings = Settings.from_env({"REDIS_URL": redis_server.url, "LEVERS_NAMESPACE": "a"})
    producer = Producer(settings)
    try:
        result = producer.enqueue_contacts([{"number": f"+9665012{i:05d}"} for i in range(120)])
        assert len(result.accepted) == 120
        assert read_backlog(redis_client, store.keys).queued == 120
        # What the worker would fetch: 50 + 50 + 20 contacts in three messages.
        messages = [
            Message.decode(raw)
            for raw in redis_client.hvals(f"{store.keys.dramatiq}:levers.contacts.msgs")
        ]
        assert sorted(len(m.args[0]) for m in messages) == [20, 50, 50]
        for message in messages + messages:  # each one delivered twice
            aggregator.handle(message.args[0], message.message_id)
        backlog = read_backlog(redis_client, store.keys)
        assert backlog.queued == 0 and backlog.pending == 20 and backlog.total == 120
        assert backlog.in_flight["queued"] == 100
    finally:
        producer.close()
