"""The producer: validate contacts and put them on the contacts queue.

`Producer` is explicit (settings and broker passed in); the module functions use one default
producer built from the environment on first use, never at import.

With `LEVERS_REDIS_MIN_REPLICAS` set, an enqueue counts once that many replicas confirmed it
(Redis WAIT, in the same round trip). Contacts the primary took but too few replicas
confirmed in time are reported (`NotReplicatedError` for one contact, `unconfirmed` rows for
many): they will be called unless a failover loses them now. Sending them again is safe
while dedupe is on (`LEVERS_DEDUPE_WINDOW_SECONDS`, the default): the same number, or the same
`dedupe_key`, for the same batch key is dropped as a duplicate if the first one survived.
See worker/durability.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from redis.client import Pipeline
from redis.exceptions import NoScriptError

from worker.backlog import QueuedContacts
from worker.broker import build_broker, contact_message, enqueue_pipelined
from worker.contacts import SUPPRESSED, normalise_number, validate_contact
from worker.durability import Durability
from worker.errors import BacklogFullError, ContactError, NotReplicatedError
from worker.headroom import Headroom
from worker.keys import Keys
from worker.presence import mark_producer, no_worker_warning
from worker.settings import Settings
from worker.suppression import Suppression

# Contacts per Redis round trip in enqueue_contacts.
PIPELINE_SIZE = 500
# Contacts per dramatiq message in enqueue_contacts: the worker appends a message's contacts in
# one round trip, so dramatiq's per-message cost is paid once per chunk, not once per contact.
CHUNK_SIZE = 50
# How often a long-lived producer looks again for a worker consuming its namespace.
PRESENCE_CHECK_SECONDS = 60.0

log = logging.getLogger("levers.producer")


@dataclass(frozen=True)
class Rejection:
    index: int
    reason: str
    message: str


@dataclass
class EnqueueResult:
    accepted: list[tuple[int, str]] = field(default_factory=list)  # (row index, contact id)
    rejected: list[Rejection] = field(default_factory=list)
    # Accepted rows that too few replicas confirmed (LEVERS_REDIS_MIN_REPLICAS): enqueued on
    # the primary, and lost if it fails over now. Also in `accepted`.
    unconfirmed: list[tuple[int, str]] = field(default_factory=list)


class Producer:
    def __init__(
        self,
        settings: Settings,
        broker: RedisBroker | None = None,
        *,
        check_workers: bool = True,
    ) -> None:
        """`check_workers`: warn (log, once a minute at most) when no worker is consuming the
        namespace, e.g. because producer and workers disagree on REDIS_URL or LEVERS_NAMESPACE
        (see `worker.presence`)."""
        self.settings = settings
        if broker is None:
            broker = build_broker(settings)
            mark_producer(broker)
        self.broker = broker
        self.check_workers = check_workers
        self._next_check = 0.0
        keys = Keys(settings.namespace)
        self.rules = settings.contact_rules
        self.queued = QueuedContacts(self.broker.client, keys)
        self.headroom = Headroom(self.broker.client, keys, settings.max_backlog_bytes)
        self.suppression = Suppression(self.broker.client, keys)
        self.durability = Durability(settings.redis_min_replicas, settings.redis_wait_timeout_ms)

    def warn_without_workers(self) -> str | None:
        """Log and return the no-worker warning when it is time to look and it applies."""
        now = time.monotonic()
        if not self.check_workers or now < self._next_check:
            return None
        self._next_check = now + PRESENCE_CHECK_SECONDS
        try:
            warning = no_worker_warning(self.broker.client, self.settings)
        except redis.RedisError:
            return None  # the enqueue that follows reports the connection itself
        if warning:
            log.warning(warning)
        return warning

    def enqueue_contact(
        self,
        number: str,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        template_id: str | None = None,
        update_existing: bool = False,
        metadata: Mapping[str, Any] | None = None,
        prompt_tags: Mapping[str, str] | None = None,
        region: str | None = None,
        dedupe_key: str | None = None,
        time_zone: str | None = None,
        not_before: float | str | datetime | None = None,
        expire_at: float | str | datetime | None = None,
    ) -> str:
        """Validate and enqueue one contact; returns its contact id.

        `time_zone` (an IANA name) overrides the number's own zones for calling hours;
        `not_before` and `expire_at` (epoch seconds, an aware datetime, or ISO 8601 with an
        offset) bound when it may be called: it waits until `not_before` and its window, and
        is dead-lettered as `expired` if still unsent at `expire_at`.

        Raises ContactError for a contact that will not be called, and BacklogFullError
        (retryable) when Redis is too full to take it: then nothing was enqueued. Raises
        NotReplicatedError (its `result`: [the contact id]) when it was enqueued on the primary
        but too few replicas confirmed it: it will be called unless a failover loses it now.
        """
        row = {
            "number": number,
            "first_name": first_name,
            "last_name": last_name,
            "template_id": template_id,
            "update_existing": update_existing,
            "metadata": dict(metadata) if metadata is not None else None,
            "prompt_tags": dict(prompt_tags) if prompt_tags is not None else None,
            "region": region,
            "dedupe_key": dedupe_key,
            "time_zone": time_zone,
            "not_before": not_before,
            "expire_at": expire_at,
        }
        contact = validate_contact(_present(row), self.rules)
        if self.suppression.check([contact.number]):
            raise ContactError(SUPPRESSED, "the number is on the do-not-call list")
        self.warn_without_workers()
        self.headroom.check(1)
        try:
            [message] = self._enqueue([contact_message(contact.to_message())], [1])
        except NotReplicatedError as exc:
            exc.result = [str(m.message_id) for m in exc.result]  # type: ignore[attr-defined]
            raise
        return str(message.message_id)

    def enqueue_contacts(
        self, rows: Iterable[Mapping[str, Any]], *, pipe: Pipeline | None = None
    ) -> EnqueueResult:
        """Validate every row; enqueue the valid ones CHUNK_SIZE per message and PIPELINE_SIZE
        per round trip. A contact's id is `<message id>:<position in its message>`.

        When Redis is too full (see worker/headroom.py), the rows not yet enqueued are
        rejected with reason `backlog_full`: nothing of them was enqueued, send them again
        later. When a round trip is not confirmed by enough replicas, its rows are accepted and
        listed in `unconfirmed`, and the rows after it are rejected with reason
        `replicas_unavailable` (nothing of them was enqueued). A Redis error raises; the round
        trips before it stand (their contacts were accepted, but not reported): retry with the
        same `dedupe_key`s to be safe.

        With `pipe` (a MULTI/EXEC pipeline on this producer's Redis) every message is queued on
        it and nothing is sent: the caller executes it (and waits for replicas if it needs to),
        so the whole call is enqueued together with the caller's own commands, or none of it
        is. The ids hold once it has run.
        """
        self.warn_without_workers()
        result = EnqueueResult()
        pending: list[tuple[int, dict[str, Any]]] = []
        refusal: tuple[str, str] | None = None
        for index, row in enumerate(rows):
            try:
                contact = validate_contact(_present(row), self.rules)
            except ContactError as exc:
                result.rejected.append(Rejection(index, exc.reason, str(exc)))
                continue
            pending.append((index, contact.to_message()))
            if len(pending) >= PIPELINE_SIZE:
                refusal = self._flush(pending, result, refusal, pipe)
        self._flush(pending, result, refusal, pipe)
        result.rejected.sort(key=lambda r: r.index)
        return result

    def _flush(
        self,
        pending: list[tuple[int, dict[str, Any]]],
        result: EnqueueResult,
        refusal: tuple[str, str] | None,
        pipe: Pipeline | None = None,
    ) -> tuple[str, str] | None:
        """Enqueue `pending` in one transaction, or refuse all of it once the backlog is full
        or replicas did not confirm (a call refused once refuses the rest, so its accepted
        rows stay a prefix). Returns the (reason, message) the rest is refused with, if any."""
        if pending and refusal is None:
            try:
                self.headroom.check(len(pending))
            except BacklogFullError as exc:
                refusal = (exc.reason, str(exc))
        if refusal is not None:
            result.rejected.extend(Rejection(i, *refusal) for i, _ in pending)
            pending.clear()
            return refusal
        suppressed = self.suppression.check([payload["number"] for _, payload in pending])
        if suppressed:
            result.rejected.extend(
                Rejection(i, SUPPRESSED, "the number is on the do-not-call list")
                for i, payload in pending
                if payload["number"] in suppressed
            )
            pending[:] = [(i, p) for i, p in pending if p["number"] not in suppressed]
        chunks = [pending[i : i + CHUNK_SIZE] for i in range(0, len(pending), CHUNK_SIZE)]
        short: NotReplicatedError | None = None
        try:
            messages = self._enqueue(
                [contact_message([payload for _, payload in chunk]) for chunk in chunks],
                [len(chunk) for chunk in chunks],
                pipe,
            )
        except NotReplicatedError as exc:
            messages, short = exc.result, exc  # type: ignore[assignment]
        for chunk, message in zip(chunks, messages, strict=True):
            accepted = [
                (index, f"{message.message_id}:{position}")
                for position, (index, _) in enumerate(chunk)
            ]
            result.accepted.extend(accepted)
            if short is not None:
                result.unconfirmed.extend(accepted)
        pending.clear()
        if short is None:
            return None
        return short.reason, (
            "not enqueued: an earlier part of this call was not confirmed by enough Redis "
            f"replicas ({short.acked} of {short.required} within {short.timeout_ms} ms, "
            "LEVERS_REDIS_MIN_REPLICAS); send these again later"
        )

    def _enqueue(
        self,
        messages: list[dramatiq.Message[Any]],
        sizes: list[int],
        pipe: Pipeline | None = None,
    ) -> list[dramatiq.Message[Any]]:
        """All `messages` and their count in the `queued` gauge, in one transaction (a Redis
        failure leaves none of them enqueued), then WAIT for replicas when asked to (raises
        NotReplicatedError, its `result`: the messages, enqueued on the primary). On the
        caller's `pipe`, they are only queued."""
        if not messages:
            return []
        enqueued: list[dramatiq.Message[Any]] = []

        def fill(pipe: Pipeline) -> None:
            for message, size in zip(messages, sizes, strict=True):
                self.queued.count_in(pipe, message.message_id, size)
            enqueued[:] = enqueue_pipelined(self.broker, messages, pipe)

        if pipe is not None:
            fill(pipe)
            return enqueued
        client = self.broker.client
        try:
            try:
                self.durability.transaction(client, fill, "enqueue")
            except NoScriptError:
                # The pipeline loaded dramatiq's script, then the connection failed and
                # redis-py ran the transaction again on a new primary (a failover), whose
                # script cache is empty: the counts were made, the enqueues were not. Take the
                # counts off (once per message) and do it all again: the pipeline loads the
                # script first.
                for message in messages:
                    self.queued.settle(message.message_id)
                self.durability.transaction(client, fill, "enqueue")
        except NotReplicatedError as exc:
            exc.result = enqueued
            raise
        return enqueued

    def close(self) -> None:
        self.broker.close()


def _present(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None}


_default: Producer | None = None
_default_lock = threading.Lock()


def default_producer() -> Producer:
    global _default
    with _default_lock:
        if _default is None:
            _default = Producer(Settings.from_env())
        return _default


def enqueue_contact(number: str, **fields: Any) -> str:
    """`Producer.enqueue_contact` on the producer configured from the environment."""
    return default_producer().enqueue_contact(number, **fields)


def enqueue_contacts(rows: Iterable[Mapping[str, Any]]) -> EnqueueResult:
    """`Producer.enqueue_contacts` on the producer configured from the environment."""
    return default_producer().enqueue_contacts(rows)


def suppress(numbers: Iterable[str], *, note: str = "", expire_at: float | None = None) -> int:
    """Put numbers on the do-not-call list (normalised to E.164 with the producer's rules);
    returns how many were not on it. Raises ContactError for a number that is not one."""
    producer = default_producer()
    normalised = [normalise_number(n, producer.rules.default_region) for n in numbers]
    return producer.suppression.add(normalised, note=note, expire_at=expire_at)
