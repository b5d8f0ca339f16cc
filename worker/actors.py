"""The two dramatiq actors, declared on an explicit broker.

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
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from worker.broker import AGGREGATE_ACTOR, BATCHES_QUEUE, CONTACTS_QUEUE, SEND_ACTOR
from worker.runtime import Runtime

log = logging.getLogger("levers.actors")

# A contact message that fails (Redis down or full) is tried again at most this far apart, ms.
CONTACT_RETRY_MAX_BACKOFF_MS = 30_000


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
        max_backoff=CONTACT_RETRY_MAX_BACKOFF_MS,
    )(levers_aggregate)
    send_actor = dramatiq.actor(
        broker=broker, actor_name=SEND_ACTOR, queue_name=BATCHES_QUEUE, max_retries=0
    )(levers_send_batch)
    return aggregate_actor, send_actor
