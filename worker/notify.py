"""Outcomes to producers: a dramatiq message to their own actor, or a signed HTTP callback.

    notifier.notify(route, contact_id, payload)     once per contact and kind (a marker)
    callbacks.deliver(callback_id, url, payload, attempt)

`[templates."<id>".outcomes]` in the calling policy names an `actor` (and its `queue`), a `url`,
or both. The actor's message is put on that queue of our broker (same Redis, dramatiq namespace
`<LEVERS_NAMESPACE>:dramatiq`), with a message id derived from the contact id, so the
producer's worker can deduplicate. A callback is a message on our `levers.callbacks` queue; the
`levers_callback` actor POSTs the outcome, signed like Levers' own webhooks (Svix headers, with
LEVERS_CALLBACK_SECRET, the same `svix-id` on every attempt), and counts any 2xx as delivered.
Anything else is retried with dramatiq's backoff (LEVERS_CALLBACK_BACKOFF_SECONDS, doubled,
at most an hour) up to LEVERS_CALLBACK_MAX_ATTEMPTS attempts, then dead-lettered in
`Keys.callbacks_dead` (`levers-admin callbacks list|replay|purge`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import dramatiq
import httpx
import redis
from dramatiq.brokers.redis import RedisBroker

from worker.broker import callback_message, enqueue_pipelined
from worker.keys import Keys
from worker.once import run_once
from worker.policy.outcomes import OutcomeRoute
from worker.scripting import Clock, as_text, compact, redis_now
from worker.signing import svix_headers

log = logging.getLogger("levers.notify")

MAX_BACKOFF_SECONDS = 3600


class CallbackFailed(Exception):
    """A callback attempt failed; dramatiq retries the message with its backoff."""


def message_id_for(namespace: str, contact_id: str) -> str:
    """The same id for every message about one contact's outcome: a producer's dedupe key."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"levers-batcher:{namespace}:{contact_id}"))


class Notifier:
    def __init__(self, client: redis.Redis, keys: Keys, broker: RedisBroker, ttl_seconds: int):
        self.client = client
        self.keys = keys
        self.broker = broker
        self.ttl_seconds = ttl_seconds

    def notify(self, route: OutcomeRoute, contact_id: str, payload: dict[str, Any]) -> list[str]:
        """Queue what `route` asks for, each at most once per contact; returns the kinds queued
        now (`actor`, `http`)."""
        queued = []
        message_id = message_id_for(self.keys.namespace, contact_id)
        if route.actor:
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=route.queue,
                actor_name=route.actor,
                args=(payload,),
                kwargs={},
                options={},
                message_id=message_id,
            )
            if self._once(contact_id, "actor", message):
                queued.append("actor")
        if route.url:
            message = callback_message(contact_id, route.url, payload)
            if self._once(contact_id, "http", message):
                queued.append("http")
        return queued

    def _once(self, contact_id: str, kind: str, message: dramatiq.Message[Any]) -> bool:
        return run_once(
            self.client,
            self.keys.notified(contact_id, kind),
            message.message_id,
            self.ttl_seconds,
            lambda pipe: enqueue_pipelined(self.broker, [message], pipe),
        )


class CallbackDeadLetters:
    """Callbacks given up after their last attempt: kept for an operator to replay or purge."""

    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock | None = None) -> None:
        self.client = client
        self.keys = keys
        self.clock = clock

    def add(
        self, callback_id: str, url: str, payload: dict[str, Any], attempts: int, error: str
    ) -> None:
        now = redis_now(self.client, self.clock)
        record = {
            "id": callback_id,
            "url": url,
            "payload": payload,
            "attempts": attempts,
            "error": error[:500],
            "at": now,
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.callbacks_dead, callback_id, compact(record))
        pipe.zadd(self.keys.callbacks_dead_index, {callback_id: int(now * 1000)})
        pipe.execute()

    def count(self) -> int:
        return int(self.client.zcard(self.keys.callbacks_dead_index))

    def select(self, ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Records oldest first (those of `ids` only, when given)."""
        wanted = list(ids) or [
            as_text(i) for i in self.client.zrange(self.keys.callbacks_dead_index, 0, -1)
        ]
        if not wanted:
            return []
        return [json.loads(r) for r in self.client.hmget(self.keys.callbacks_dead, wanted) if r]

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.callbacks_dead, *ids)
        pipe.zrem(self.keys.callbacks_dead_index, *ids)
        removed, _ = pipe.execute()
        return int(removed)

    def replay(self, broker: RedisBroker, records: Sequence[dict[str, Any]]) -> int:
        """Queue the records' callbacks again (a fresh round of attempts), then delete them."""
        if not records:
            return 0
        pipe = self.client.pipeline(transaction=True)
        enqueue_pipelined(
            broker, [callback_message(r["id"], r["url"], r["payload"]) for r in records], pipe
        )
        pipe.hdel(self.keys.callbacks_dead, *(r["id"] for r in records))
        pipe.zrem(self.keys.callbacks_dead_index, *(r["id"] for r in records))
        pipe.execute()
        return len(records)

    def expire(self, retention_seconds: float, limit: int = 1000) -> int:
        cutoff = int((redis_now(self.client, self.clock) - retention_seconds) * 1000)
        old = self.client.zrangebyscore(self.keys.callbacks_dead_index, "-inf", cutoff, 0, limit)
        return self.delete(as_text(i) for i in old)


class Callbacks:
    """One attempt of one HTTP callback."""

    def __init__(
        self,
        secret: str | None,
        http: httpx.Client,
        dead: CallbackDeadLetters,
        max_attempts: int,
        clock: Clock | None = None,
    ) -> None:
        self.secret = secret
        self.http = http
        self.dead = dead
        self.max_attempts = max_attempts
        self.clock = clock

    def deliver(self, callback_id: str, url: str, payload: dict[str, Any], attempt: int) -> str:
        """POST the outcome. Returns `delivered` or `dead`; raises CallbackFailed when another
        attempt is due."""
        if not self.secret:
            error = "LEVERS_CALLBACK_SECRET is not set: callbacks are not sent unsigned"
        else:
            body = compact(payload).encode()
            # The receiver checks the timestamp against its own clock, as with Svix: host time.
            now = self.clock() if self.clock else time.time()
            headers = svix_headers(self.secret, f"msg_{callback_id}", now, body)
            try:
                answer = self.http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= answer.status_code < 300:
                    return "delivered"
                error = f"answered {answer.status_code}: {answer.text[:200]}"
        if attempt >= self.max_attempts:
            self.dead.add(callback_id, url, payload, attempt, error)
            log.error(
                "outcome callback dead-lettered",
                extra={"callback_id": callback_id, "attempts": attempt, "error": error[:200]},
            )
            return "dead"
        log.warning(
            "outcome callback failed, will retry",
            extra={"callback_id": callback_id, "attempt": attempt, "error": error[:200]},
        )
        raise CallbackFailed(error)
