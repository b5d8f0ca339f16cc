"""The two dramatiq actors, declared on an explicit broker, and the objects they call.

Actors stay thin: `levers_aggregate` hands its payload to the `Aggregator`, `levers_send_batch`
hands its batch id to the `Sender`. Both are idempotent on their input (the dramatiq message id
for contacts, the batch's state in Redis for sends), because dramatiq delivers at least once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from worker.aggregator import Aggregator, Flusher
from worker.broker import (
    AGGREGATE_ACTOR,
    BATCHES_QUEUE,
    CONTACTS_QUEUE,
    SEND_ACTOR,
    send_message,
)
from worker.deadletters import DeadLetters
from worker.keys import Keys
from worker.levers import LeversClient, Timeouts
from worker.metrics import Metrics
from worker.ratelimit import Limits, Pacer, Slots
from worker.sender import RetryPolicy, Sender
from worker.settings import Settings
from worker.store import BatchStore, Clock, StoreConfig


def store_config(settings: Settings) -> StoreConfig:
    return StoreConfig(
        batch_max_size=settings.batch_max_size,
        batch_max_wait_seconds=settings.batch_max_wait_seconds,
        dedupe_window_seconds=settings.dedupe_window_seconds,
        send_lease_seconds=settings.send_lease_seconds,
        batch_retention_seconds=settings.batch_retention_seconds,
    )


@dataclass
class Runtime:
    """Everything one worker process needs, built from settings (tests build parts directly)."""

    settings: Settings
    broker: RedisBroker
    store: BatchStore
    aggregator: Aggregator
    sender: Sender
    flusher: Flusher
    metrics: Metrics

    @classmethod
    def build(
        cls,
        settings: Settings,
        broker: RedisBroker,
        metrics: Metrics,
        *,
        client: LeversClient | None = None,
        clock: Clock = time.time,
    ) -> Runtime:
        redis_client: redis.Redis = broker.client
        keys = Keys(settings.namespace)
        store = BatchStore(redis_client, keys, store_config(settings), clock)
        dead = DeadLetters(redis_client, keys, clock)
        pacer = Pacer(
            redis_client,
            keys,
            Limits(
                settings.max_requests_per_second,
                settings.max_contacts_per_minute,
                settings.rate_jitter_ms,
                adaptive=settings.adaptive_rate,
                adaptive_floor=min(
                    settings.adaptive_min_requests_per_second, settings.max_requests_per_second
                ),
                adaptive_step=settings.adaptive_step,
            ),
            clock,
        )
        levers = client or LeversClient(
            settings.base_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            api_token=settings.api_token,
            timeouts=Timeouts(settings.connect_timeout_seconds, settings.request_timeout_seconds),
            clock=clock,
            on_token=lambda ok: (metrics.token_refreshes if ok else metrics.token_failures).inc(),
        )

        def enqueue_batch(batch_id: str) -> None:
            broker.enqueue(send_message(batch_id))
            store.mark_queued(batch_id)

        sender = Sender(
            store,
            pacer,
            levers,
            metrics,
            RetryPolicy(
                max_retries=settings.max_send_retries,
                max_elapsed_seconds=settings.max_retry_seconds,
            ),
            enqueue_batch=enqueue_batch,
            slots=Slots(
                redis_client,
                keys,
                settings.max_in_flight,
                # A holder that dies frees its slot once its request could no longer be running.
                lease_seconds=settings.connect_timeout_seconds
                + settings.request_timeout_seconds
                + 5,
                clock=clock,
            ),
            resend_unknown=settings.resend_unknown,
            clock=clock,
        )
        return cls(
            settings=settings,
            broker=broker,
            store=store,
            aggregator=Aggregator(store, enqueue_batch, metrics, settings.default_region),
            sender=sender,
            flusher=Flusher(
                store,
                enqueue_batch,
                metrics,
                housekeeping=lambda: dead.expire(settings.dead_letter_retention_seconds),
                clock=clock,
            ),
            metrics=metrics,
        )


def _current_message_id() -> str:
    message = CurrentMessage.get_current_message()
    if message is None:
        raise RuntimeError("the CurrentMessage middleware is not installed on the broker")
    return str(message.message_id)


def declare_actors(runtime: Runtime) -> tuple[dramatiq.Actor[Any, Any], dramatiq.Actor[Any, Any]]:
    broker = runtime.broker

    def levers_aggregate(payload: Any) -> None:
        runtime.aggregator.handle(payload, _current_message_id())

    def levers_send_batch(batch_id: str) -> None:
        result = runtime.sender.send(batch_id)
        if result.outcome == "retry":
            # dramatiq's retry machinery delivers the same message again after the delay,
            # without holding a worker thread meanwhile.
            raise dramatiq.Retry(
                f"batch {batch_id}: {result.detail[:200]}", delay=int(result.retry_in * 1000)
            )

    aggregate_actor = dramatiq.actor(
        broker=broker,
        actor_name=AGGREGATE_ACTOR,
        queue_name=CONTACTS_QUEUE,
        max_retries=20,
    )(levers_aggregate)
    send_actor = dramatiq.actor(
        broker=broker,
        actor_name=SEND_ACTOR,
        queue_name=BATCHES_QUEUE,
        # Our own attempt count decides when a batch is dead; this only bounds redelivery of a
        # message that keeps crashing the code.
        max_retries=runtime.settings.max_send_retries + 20,
        max_backoff=300_000,
    )(levers_send_batch)
    return aggregate_actor, send_actor
