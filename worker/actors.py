"""The dramatiq actors, declared on an explicit broker: the pipeline's two, and the outcomes'.

Actors stay thin: `levers_aggregate` hands its payload to the `Aggregator`, `levers_send_batch`
hands its token to the `Sender`. Both are idempotent on their input (the dramatiq message id
for contacts, the batch's state in Redis for sends), because dramatiq delivers at least once.

Neither lets a message end in dramatiq's dead-letter queue (`.XQ`), where no command of ours
looks: a contact message is retried until it is handled (with a capped backoff: only Redis
being unavailable or full makes it fail), and a send token is spent whatever happens, because
the batch's record in Redis (lease, retry time, reaper) decides what happens to the batch.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from worker.broker import (
    AGGREGATE_ACTOR,
    BATCHES_QUEUE,
    CALLBACK_ACTOR,
    CALLBACKS_QUEUE,
    CONTACTS_QUEUE,
    OUTCOME_ACTOR,
    OUTCOMES_QUEUE,
    SEND_ACTOR,
)
from worker.notify import CallbackFailed
from worker.outcome_runtime import callback_backoff_ms
from worker.runtime import Runtime

log = logging.getLogger("levers.actors")

# A contact message that fails (Redis down or full) is tried again at most this far apart, ms.
CONTACT_RETRY_MAX_BACKOFF_MS = 30_000
# ...and first after about this long (dramatiq: 15 s), doubling: a message whose appends
# replicas did not confirm (LEVERS_REDIS_MIN_REPLICAS) is settled soon after they are back.
CONTACT_RETRY_MIN_BACKOFF_MS = 1_000


def _current_message_id() -> str:
    message = CurrentMessage.get_current_message()
    if message is None:
        raise RuntimeError("the CurrentMessage middleware is not installed on the broker")
    return str(message.message_id)


def _always(retries: int, exception: Exception) -> bool:
    return True


def declare_actors(runtime: Runtime) -> tuple[dramatiq.Actor[Any, Any], dramatiq.Actor[Any, Any]]:
    broker = runtime.broker

    def levers_aggregate(payload: Any) -> None:
        runtime.aggregator.handle(payload, _current_message_id())

    def levers_send_batch(batch_id: str) -> None:
        try:
            runtime.sender.send(batch_id)
        except Exception:
            # The token is spent; the batch is not lost: its lease runs out (or the sender
            # already handed it back) and the reaper gives it a new token.
            runtime.metrics.send_errors.inc()
            log.exception("send attempt failed", extra={"batch_id": batch_id})

    aggregate_actor = dramatiq.actor(
        broker=broker,
        actor_name=AGGREGATE_ACTOR,
        queue_name=CONTACTS_QUEUE,
        retry_when=_always,
        min_backoff=CONTACT_RETRY_MIN_BACKOFF_MS,
        max_backoff=CONTACT_RETRY_MAX_BACKOFF_MS,
    )(levers_aggregate)
    send_actor = dramatiq.actor(
        broker=broker, actor_name=SEND_ACTOR, queue_name=BATCHES_QUEUE, max_retries=0
    )(levers_send_batch)
    return aggregate_actor, send_actor


# A callback message is never given up by dramatiq: the callback sender dead-letters it itself
# after LEVERS_CALLBACK_MAX_ATTEMPTS, into a store levers-admin lists (not dramatiq's .XQ).
CALLBACK_MAX_RETRIES = 10_000


def declare_outcome_actors(
    runtime: Runtime,
) -> tuple[dramatiq.Actor[Any, Any], dramatiq.Actor[Any, Any]]:
    """`levers_outcome` (a verified call-ended event, from levers-ingest) and `levers_callback`
    (one attempt of an outcome callback to a producer's URL)."""
    broker = runtime.broker
    outcomes = runtime.outcomes
    rng = random.Random()

    def levers_outcome(event: dict[str, Any]) -> None:
        outcomes.handler.handle(event)

    def levers_callback(callback_id: str, url: str, payload: dict[str, Any]) -> None:
        message = CurrentMessage.get_current_message()
        attempt = int(message.options.get("retries", 0)) + 1 if message else 1
        try:
            result = outcomes.callbacks.deliver(callback_id, url, payload, attempt)
        except CallbackFailed as exc:
            outcomes.metrics.callbacks.labels("http", "failed").inc()
            delay = callback_backoff_ms(runtime.settings, attempt, rng)
            raise dramatiq.Retry(str(exc), delay=delay) from None
        outcomes.metrics.callbacks.labels("http", result).inc()

    outcome_actor = dramatiq.actor(
        broker=broker,
        actor_name=OUTCOME_ACTOR,
        queue_name=OUTCOMES_QUEUE,
        retry_when=_always,
        max_backoff=CONTACT_RETRY_MAX_BACKOFF_MS,
    )(levers_outcome)
    callback_actor = dramatiq.actor(
        broker=broker,
        actor_name=CALLBACK_ACTOR,
        queue_name=CALLBACKS_QUEUE,
        max_retries=CALLBACK_MAX_RETRIES,
    )(levers_callback)
    return outcome_actor, callback_actor
