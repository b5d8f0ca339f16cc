"""The dramatiq broker, built in exactly one place.

Producers and workers both call `build_broker`; nothing relies on dramatiq's implicit global
broker (which silently points at localhost when nobody set one). Messages are addressed by
queue and actor name, so producers do not need to import the worker's actors.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Middleware
from redis.client import Pipeline

from worker import durable_retries
from worker.connection import connect
from worker.keys import Keys
from worker.settings import Settings

CONTACTS_QUEUE = "levers.contacts"
BATCHES_QUEUE = "levers.batches"
AGGREGATE_ACTOR = "levers_aggregate"
SEND_ACTOR = "levers_send_batch"
# Call outcomes: verified webhook events (from levers-ingest), and callbacks to producers.
OUTCOMES_QUEUE = "levers.outcomes"
CALLBACKS_QUEUE = "levers.callbacks"
OUTCOME_ACTOR = "levers_outcome"
CALLBACK_ACTOR = "levers_callback"


class ReconnectWatch:
    """Notices when any connection of a Redis client connects a second time, or connects to
    another server than the one before (a new primary named by Sentinel).

    Either means acks or retries sent before may have been lost: through a connection that
    failed, or to a primary that was replaced (see `worker.process.new_broker_identity`). A
    new connection after a failover is not a reconnect, hence the address. Installed as
    redis-py's `redis_connect_func`, it runs the usual connection set-up first.
    """

    def __init__(self) -> None:
        self._seen: weakref.WeakSet[Any] = weakref.WeakSet()
        self._reconnected = threading.Event()
        self._address: tuple[Any, Any] | None = None

    def __call__(self, connection: Any) -> None:
        connection.on_connect()
        address = (getattr(connection, "host", None), getattr(connection, "port", None))
        if connection in self._seen or self._address not in (None, address):
            self._reconnected.set()
        self._seen.add(connection)
        self._address = address

    def take(self) -> bool:
        """True once after each reconnect."""
        if self._reconnected.is_set():
            self._reconnected.clear()
            return True
        return False


def build_broker(
    settings: Settings,
    *,
    client: redis.Redis | None = None,
    middleware: Sequence[Middleware] = (),
    watch: ReconnectWatch | None = None,
) -> RedisBroker:
    keys = Keys(settings.namespace)
    if client is None:
        client = connect(settings, on_connect=watch)
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        client=client,
        namespace=keys.dramatiq,
        heartbeat_timeout=settings.heartbeat_timeout_ms,
        # How often (per million broker commands) a process runs queue maintenance, which is
        # what gives a dead worker's messages back: ~1 in 100 instead of dramatiq's 1 in 1000.
        maintenance_chance=settings.maintenance_chance,
    )
    # A retry is enqueued even when Redis is away for a while (worker/durable_retries.py).
    durable_retries.install(broker)
    # The aggregator keys idempotency on the id of the message being processed.
    broker.add_middleware(CurrentMessage())
    for extra in middleware:
        broker.add_middleware(extra)
    broker.declare_queue(CONTACTS_QUEUE)
    broker.declare_queue(BATCHES_QUEUE)
    broker.declare_queue(OUTCOMES_QUEUE)
    broker.declare_queue(CALLBACKS_QUEUE)
    return broker


def contact_message(payload: dict[str, Any] | list[dict[str, Any]]) -> dramatiq.Message[Any]:
    """A message for the aggregate actor: one contact, or a chunk of them (a list)."""
    return dramatiq.Message(
        queue_name=CONTACTS_QUEUE,
        actor_name=AGGREGATE_ACTOR,
        args=(payload,),
        kwargs={},
        options={},
    )


def send_message(batch_id: str) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=BATCHES_QUEUE, actor_name=SEND_ACTOR, args=(batch_id,), kwargs={}, options={}
    )


def outcome_message(event: dict[str, Any]) -> dramatiq.Message[Any]:
    """A message for the outcome actor: one verified call-ended event (`worker.events`)."""
    return dramatiq.Message(
        queue_name=OUTCOMES_QUEUE, actor_name=OUTCOME_ACTOR, args=(event,), kwargs={}, options={}
    )


def callback_message(callback_id: str, url: str, payload: dict[str, Any]) -> dramatiq.Message[Any]:
    """A message for the callback actor: POST one outcome to a producer's URL."""
    return dramatiq.Message(
        queue_name=CALLBACKS_QUEUE,
        actor_name=CALLBACK_ACTOR,
        args=(callback_id, url, payload),
        kwargs={},
        options={},
    )


def enqueue_pipelined(
    broker: RedisBroker, messages: Iterable[dramatiq.Message[Any]], pipe: Pipeline
) -> list[dramatiq.Message[Any]]:
    """Add the enqueueing of many messages to `pipe` (one round trip for all of them).

    Runs the broker's own enqueue script with the arguments `RedisBroker.enqueue` passes. Each
    message gets its own Redis-level id, as `RedisBroker.enqueue` gives it, because that id is
    what the broker acks by. A message dramatiq's enqueue has delayed (its `.DQ` queue and
    `eta`) keeps its delay. tests/test_broker.py pins that the Redis state left is the same as
    dramatiq's own enqueue leaves, so a dramatiq upgrade that changes the script is caught.
    """
    dispatch = broker.scripts["dispatch"]
    enqueued = []
    for message in messages:
        message = message.copy(options={"redis_message_id": str(uuid4())})
        broker.emit_before("enqueue", message, None)
        dispatch(
            keys=[broker.namespace],
            args=[
                "enqueue",
                int(time.time() * 1000),
                message.queue_name,
                broker.broker_id,
                broker.heartbeat_timeout,
                broker.dead_message_ttl,
                0,  # no maintenance pass inside a producer's pipeline
                # The Lua stack bound dramatiq's fetch uses (`_max_unpack_size`, private);
                # its enqueue does not read it (pinned by tests/test_broker.py).
                _UNUSED_BY_ENQUEUE,
                message.options["redis_message_id"],
                message.encode(),
            ],
            client=pipe,
        )
        enqueued.append(message)
    return enqueued


_UNUSED_BY_ENQUEUE = 1
