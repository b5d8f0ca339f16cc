"""Turn a request's contacts into outcomes: validated and enqueued all together, or not at all.

`Intake.submit` is blocking (redis-py, phonenumbers) and runs in the app's thread pool. It
validates with `Producer.enqueue_contacts`, the same code and rules as the Python producer (50
contacts per dramatiq message), and queues every message of the request on one MULTI/EXEC
transaction: when Redis fails part-way, nothing of the request was enqueued. With an
Idempotency-Key the answer goes into the same transaction (see `idempotency`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.client import Pipeline

from producers.api import Producer
from producers.ingest.idempotency import Outcomes, commit_once
from worker.errors import BacklogFullError
from worker.keys import Keys


class BacklogFull(Exception):
    """Nothing of the request was enqueued: Redis is too full for it (see worker/headroom.py)."""


@dataclass(frozen=True)
class Submission:
    outcomes: Outcomes
    replayed: bool  # answered from the record of an earlier request with the same key


class Intake:
    def __init__(self, producer: Producer, keys: Keys, idempotency_seconds: int) -> None:
        self.producer = producer
        self.keys = keys
        self.idempotency_seconds = idempotency_seconds

    def submit(
        self,
        rows: Sequence[dict[str, Any]],
        idempotency_key: str | None = None,
        body_fingerprint: str = "",
    ) -> Submission:
        """Validate and enqueue `rows` (Python field names). Raises `KeyReused`, `Contended`,
        `BacklogFull` or redis-py's errors, with nothing of this request enqueued."""

        def stage(pipe: Pipeline) -> Outcomes:
            result = self.producer.enqueue_contacts(rows, pipe=pipe)
            full = [r for r in result.rejected if r.reason == BacklogFullError.reason]
            if full:
                # Redis is near its memory limit: refuse the whole request (the transaction is
                # never executed) rather than accept part of it.
                raise BacklogFull(full[0].message)
            return Outcomes.of(len(rows), result)

        client = self.producer.broker.client
        if idempotency_key is None:
            with client.pipeline(transaction=True) as pipe:
                outcomes = stage(pipe)
                pipe.execute()
            return Submission(outcomes, replayed=False)
        outcomes, replayed = commit_once(
            client,
            self.keys.idempotency(idempotency_key),
            body_fingerprint,
            self.idempotency_seconds,
            stage,
        )
        return Submission(outcomes, replayed)

    def ready(self) -> bool:
        """Redis answers (raises redis-py's errors when it does not)."""
        return bool(self.producer.broker.client.ping())
