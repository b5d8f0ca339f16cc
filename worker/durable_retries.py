"""dramatiq's Retries, with a retry that is never lost to a Redis outage.

When an actor raises, dramatiq's `Retries` middleware enqueues the message again (with its
backoff) and the worker then acks the original. If Redis is unreachable at that moment, the
enqueue raises; dramatiq logs that and goes on to the ack, which it tries again and again
until Redis answers. So when Redis comes back, the original is acked and its retry was never
enqueued: a contact message (up to 50 contacts) would be gone without a trace.

`DurableRetries` hands the middleware a broker whose `enqueue` waits for Redis on a connection
error, trying again with a capped backoff, as dramatiq's own ack does: the retry is enqueued
before the ack. A retry enqueued twice (its reply lost) is one message id twice, which the
actors handle once (the aggregator keys on the message id). Any other error (Redis full, say)
is raised as before: waiting on a full Redis would hold the very threads that free it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
import redis
from dramatiq.middleware import Retries

log = logging.getLogger("levers.retries")

FIRST_WAIT_SECONDS = 0.25
MAX_WAIT_SECONDS = 5.0
CONNECTION_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    dramatiq.errors.BrokerConnectionError,
)


class DurableRetries(Retries):
    def __init__(self, *, stop: threading.Event | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.stop = stop or threading.Event()  # set at shutdown: the last try then raises

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.stop.set()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        super().after_process_message(  # type: ignore[no-untyped-call]
            _Persistent(broker, self.stop), message, result=result, exception=exception
        )


class _Persistent:
    """The broker, whose `enqueue` waits out a Redis that does not answer."""

    def __init__(self, broker: dramatiq.Broker, stop: threading.Event) -> None:
        self._broker = broker
        self._stop = stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        wait, told = FIRST_WAIT_SECONDS, False
        while True:
            try:
                enqueued = self._broker.enqueue(message, delay=delay)
            except CONNECTION_ERRORS as exc:
                if self._stop.is_set():
                    raise
                if not told:
                    log.warning(
                        "the retry of a message could not be enqueued (Redis: %s); trying "
                        "again until Redis answers, before the message is acknowledged",
                        exc,
                        extra={"message_id": message.message_id},
                    )
                    told = True
                self._stop.wait(wait)
                wait = min(MAX_WAIT_SECONDS, wait * 2)
                continue
            if told:
                log.info("retry enqueued", extra={"message_id": message.message_id})
            return enqueued


def install(broker: dramatiq.Broker) -> DurableRetries:
    """Put a `DurableRetries` where the broker's `Retries` is (same place, same options)."""
    for position, middleware in enumerate(broker.middleware):
        if type(middleware) is Retries:
            durable = DurableRetries(
                max_retries=middleware.max_retries,
                min_backoff=middleware.min_backoff,
                max_backoff=middleware.max_backoff,
                retry_when=middleware.retry_when,
            )
            broker.middleware[position] = durable
            return durable
    raise RuntimeError("the broker has no Retries middleware to make durable")
