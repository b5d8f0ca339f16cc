"""The producer: validate contacts and put them on the contacts queue.

`Producer` is explicit (settings and broker passed in); the module functions use one default
producer built from the environment on first use, never at import.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker

from worker.broker import build_broker, contact_message, enqueue_pipelined
from worker.contacts import validate_contact
from worker.errors import ContactError
from worker.presence import mark_producer, no_worker_warning
from worker.settings import Settings

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
    ) -> str:
        """Validate and enqueue one contact; returns its contact id. Raises ContactError."""
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
        }
        contact = validate_contact(_present(row), self.settings.default_region)
        self.warn_without_workers()
        message = self.broker.enqueue(contact_message(contact.to_message()))
        return str(message.message_id)

    def enqueue_contacts(self, rows: Iterable[Mapping[str, Any]]) -> EnqueueResult:
        """Validate every row; enqueue the valid ones CHUNK_SIZE per message and PIPELINE_SIZE
        per round trip. A contact's id is `<message id>:<position in its message>`."""
        self.warn_without_workers()
        result = EnqueueResult()
        pending: list[tuple[int, dict[str, Any]]] = []
        for index, row in enumerate(rows):
            try:
                contact = validate_contact(_present(row), self.settings.default_region)
            except ContactError as exc:
                result.rejected.append(Rejection(index, exc.reason, str(exc)))
                continue
            pending.append((index, contact.to_message()))
            if len(pending) >= PIPELINE_SIZE:
                self._flush(pending, result)
        self._flush(pending, result)
        return result

    def _flush(self, pending: list[tuple[int, dict[str, Any]]], result: EnqueueResult) -> None:
        chunks = [pending[i : i + CHUNK_SIZE] for i in range(0, len(pending), CHUNK_SIZE)]
        messages = [contact_message([payload for _, payload in chunk]) for chunk in chunks]
        if messages:
            enqueue_pipelined(self.broker, messages)
        for chunk, message in zip(chunks, messages, strict=True):
            result.accepted.extend(
                (index, f"{message.message_id}:{position}")
                for position, (index, _) in enumerate(chunk)
            )
        pending.clear()

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
