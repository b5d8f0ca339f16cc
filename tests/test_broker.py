"""`enqueue_pipelined` against dramatiq's own `RedisBroker.enqueue`, on a real redis-server.

`enqueue_pipelined` runs dramatiq's enqueue script itself, with the arguments dramatiq passes,
so that producers can put many messages in one transaction. These tests pin that the Redis
state it leaves is the one dramatiq's enqueue leaves (queue list, message hash, delay queue,
heartbeat), that a dramatiq consumer fetches and acks what it enqueued, and that the one
argument it does not compute as dramatiq does (the Lua stack bound, read through the private
`_max_unpack_size`) is not read by the enqueue command. A dramatiq upgrade that changes the
script or its arguments fails here, not in production.
"""

from __future__ import annotations

import json
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from worker.broker import (
    _UNUSED_BY_ENQUEUE,
    CONTACTS_QUEUE,
    build_broker,
    contact_message,
    enqueue_pipelined,
    send_message,
)
from worker.keys import Keys
from worker.scripting import as_text
from worker.settings import Settings


def broker_for(client: redis.Redis, namespace: str, broker_id: str | None = None) -> RedisBroker:
    """The broker producers and workers build, on `client`, without maintenance passes (they
    would make the two runs differ by chance); both runs share one broker id."""
    broker = build_broker(Settings.from_env({"LEVERS_NAMESPACE": namespace}), client=client)
    broker.maintenance_chance = 0
    if broker_id is not None:
        broker.broker_id = broker_id
    return broker


def dump(client: redis.Redis, broker: RedisBroker) -> dict[str, Any]:
    """Every key under the broker's namespace, by name without the namespace; each message's
    Redis-level id (random on every enqueue) replaced by its position on its queue, and the
    heartbeat's time (the clock at the call) left out."""
    prefix = broker.namespace + ":"
    names = sorted(as_text(k) for k in client.keys(prefix + "*"))
    renamed: dict[str, str] = {}
    for name in names:
        if client.type(name) == b"list":
            for position, rid in enumerate(client.lrange(name, 0, -1)):
                renamed[as_text(rid)] = f"{name[len(prefix) :]}#{position}"
    state: dict[str, Any] = {}
    for name in names:
        kind = as_text(client.type(name))
        short = name[len(prefix) :]
        if kind == "list":
            state[short] = [renamed[as_text(r)] for r in client.lrange(name, 0, -1)]
        elif kind == "hash":
            entries = {}
            for rid, data in client.hgetall(name).items():
                message = json.loads(data)
                options = message["options"]
                options["redis_message_id"] = renamed[options["redis_message_id"]]
                entries[renamed[as_text(rid)]] = message
            state[short] = entries
        elif kind == "zset":
            state[short] = sorted(as_text(m) for m in client.zrange(name, 0, -1))
        else:
            state[short] = kind  # a key of a kind dramatiq's enqueue never wrote before
    return state


@pytest.fixture
def ours(redis_client: redis.Redis) -> RedisBroker:
    return broker_for(redis_client, "pipelined")


@pytest.fixture
def theirs(redis_client: redis.Redis, ours: RedisBroker) -> RedisBroker:
    return broker_for(redis_client, "dramatiq-own", ours.broker_id)


def messages() -> list[dramatiq.Message[Any]]:
    return [
        contact_message([{"number": "+966501234567", "name": "Sara"}, {"number": "+447911123456"}]),
        contact_message({"number": "+966501234568", "metadata": {"crm_id": "42"}}),
        send_message("batch-1"),
    ]


def pipelined(
    client: redis.Redis, broker: RedisBroker, batch: list[dramatiq.Message[Any]]
) -> list[dramatiq.Message[Any]]:
    pipe = client.pipeline(transaction=True)
    enqueued = enqueue_pipelined(broker, batch, pipe)
    pipe.execute()
    return enqueued


def test_messages_enqueued_in_one_pipeline_leave_what_dramatiqs_enqueue_leaves(
    redis_client: redis.Redis, ours: RedisBroker, theirs: RedisBroker
) -> None:
    batch = messages()
    for message in batch:
        theirs.enqueue(message)
    enqueued = pipelined(redis_client, ours, batch)

    expected = dump(redis_client, theirs)
    assert set(expected) == {
        "__heartbeats__",
        f"{CONTACTS_QUEUE}",
        f"{CONTACTS_QUEUE}.msgs",
        "levers.batches",
        "levers.batches.msgs",
    }
    assert dump(redis_client, ours) == expected
    # Each enqueue has its own Redis-level id (what the broker acks by), as dramatiq gives it.
    ids = [m.options["redis_message_id"] for m in enqueued]
    assert len(set(ids)) == len(ids)
    assert [m.message_id for m in enqueued] == [m.message_id for m in batch]


def test_a_message_dramatiq_delayed_is_enqueued_on_the_same_delay_queue(
    redis_client: redis.Redis, ours: RedisBroker, theirs: RedisBroker
) -> None:
    """A message as dramatiq's enqueue delays it (its `.DQ` queue and `eta`), enqueued again
    through the pipeline, waits on the same delay queue with the same eta."""
    delayed = theirs.enqueue(contact_message({"number": "+966501234567"}), delay=60_000)
    assert delayed.queue_name == f"{CONTACTS_QUEUE}.DQ" and "eta" in delayed.options
    pipelined(redis_client, ours, [delayed])

    expected = dump(redis_client, theirs)
    assert set(expected) == {"__heartbeats__", f"{CONTACTS_QUEUE}.DQ", f"{CONTACTS_QUEUE}.DQ.msgs"}
    assert dump(redis_client, ours) == expected


def test_a_dramatiq_consumer_fetches_and_acks_what_was_enqueued_pipelined(
    redis_client: redis.Redis, ours: RedisBroker
) -> None:
    [sent] = pipelined(redis_client, ours, [contact_message({"number": "+966501234567"})])
    consumer = ours.consume(CONTACTS_QUEUE, prefetch=1, timeout=100)
    try:
        received = next(consumer)
        assert received is not None
        assert received.message_id == sent.message_id and received.args == sent.args
        consumer.ack(received)
    finally:
        consumer.close()
    keys = Keys("pipelined")
    leftovers = [
        as_text(k)
        for k in redis_client.keys(f"{keys.dramatiq}:*")
        if not as_text(k).endswith("__heartbeats__")
    ]
    assert leftovers == [], "the ack by its Redis-level id left the message behind"


def test_dramatiqs_enqueue_does_not_read_the_lua_stack_bound(
    redis_client: redis.Redis, ours: RedisBroker, theirs: RedisBroker
) -> None:
    """enqueue_pipelined passes a constant where dramatiq passes `_max_unpack_size()` (private:
    it may run a script to learn Redis's Lua stack). Same message, both values: same state."""
    bound = theirs._max_unpack_size()  # the private call, kept in this test only
    assert isinstance(bound, int) and bound > _UNUSED_BY_ENQUEUE
    message = contact_message({"number": "+966501234567"}).copy(
        options={"redis_message_id": "fixed-id"}
    )
    for broker, value in ((theirs, bound), (ours, _UNUSED_BY_ENQUEUE)):
        broker.scripts["dispatch"](
            keys=[broker.namespace],
            args=[
                "enqueue",
                1_800_000_000_000,
                message.queue_name,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                0,
                value,
                "fixed-id",
                message.encode(),
            ],
        )
    assert dump(redis_client, ours) == dump(redis_client, theirs)
