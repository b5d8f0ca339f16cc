"""Dead letters: contacts that will not be sent unless an operator replays them.

One record per contact (`letter`): reason, Levers' message or status, attempts, batch id and
key, times, and the contact as it would have been sent. They are written by the outbox in the
same Lua call that finishes the batch, kept in a hash with a time index, so they can be listed
by reason or batch key, replayed, purged, and expired after
`LEVERS_DEAD_LETTER_RETENTION_SECONDS`.

Replay puts a contact back through the aggregator with the dedupe key `replay:<dead-letter id>`:
fresh, so the original number's dedupe marker does not drop it, yet the same for a second replay
of the same record, so replaying twice (say, after a crash halfway) still calls once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import redis

from worker.contacts import parse_batch_key
from worker.keys import Keys
from worker.scripting import Clock, as_text, redis_now

if TYPE_CHECKING:
    from worker.outbox import Claim

# Reasons a contact is dead-lettered (stable: metrics labels, filters and runbooks use them).
UNKNOWN_OUTCOME = "unknown_outcome"
RETRIES_EXHAUSTED = "retries_exhausted"
REJECTED_BY_LEVERS = "rejected_by_levers"
INVALID_CONTACT = "invalid_contact"
EXPIRED = "expired"  # its expire_at came before it could be called
SUPPRESSED = "suppressed"  # put on the do-not-call list after it was accepted
FREQUENCY_CAPPED = "frequency_capped"  # over its caps, and its expire_at (or the policy) says so
CANCELLED = "cancelled"  # an operator cancelled its template (replayable)
REASONS = (
    UNKNOWN_OUTCOME,
    RETRIES_EXHAUSTED,
    REJECTED_BY_LEVERS,
    INVALID_CONTACT,
    EXPIRED,
    SUPPRESSED,
    FREQUENCY_CAPPED,
    CANCELLED,
)

# A replayed record kept because too few replicas confirmed its contact's enqueue.
NOT_CONFIRMED = "not_confirmed"


def letter(
    claim: Claim, index: int, reason: str, status: int | None, detail: str
) -> tuple[str, dict[str, Any]]:
    """(dead-letter id, record) for the `index`-th contact of a claimed batch. The outbox's
    script adds `at`, the time it was dead-lettered by the shared clock."""
    contact_id, entry = claim.contacts[index]
    dl_id = f"{claim.batch_id}:{index}"
    return dl_id, {
        "id": dl_id,
        "reason": reason,
        "batch_id": claim.batch_id,
        "batch_key": claim.batch_key,
        "contact_id": contact_id,
        "contact": entry,
        "status": status,
        "detail": detail,
        "attempts": claim.attempts,
        "first_attempt_at": claim.first_attempt_at,
    }


class Rejection(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def reason(self) -> str: ...


class EnqueueOutcome(Protocol):
    """What a producer answers for a list of rows (`producers.EnqueueResult` is one)."""

    @property
    def accepted(self) -> Sequence[tuple[int, str]]: ...

    @property
    def rejected(self) -> Sequence[Rejection]: ...

    @property
    def unconfirmed(self) -> Sequence[tuple[int, str]]: ...


@dataclass
class ReplayResult:
    replayed: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (id, reason): kept


class DeadLetters:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock | None = None) -> None:
        self.client = client
        self.keys = keys
        self.clock = clock

    def count(self) -> int:
        return int(self.client.zcard(self.keys.dead_index))

    def ids(self) -> list[str]:
        return [as_text(i) for i in self.client.zrange(self.keys.dead_index, 0, -1)]

    def get(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        raw = self.client.hmget(self.keys.dead, list(ids))
        return [json.loads(r) for r in raw if r is not None]

    def select(
        self,
        *,
        reason: str | None = None,
        batch_key: str | None = None,
        ids: Sequence[str] = (),
    ) -> Iterator[dict[str, Any]]:
        """Records oldest first, filtered; `ids` restricts to those ids."""
        candidates = list(ids) if ids else self.ids()
        for start in range(0, len(candidates), 500):
            for record in self.get(candidates[start : start + 500]):
                if reason and record.get("reason") != reason:
                    continue
                if batch_key and record.get("batch_key") != batch_key:
                    continue
                yield record

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.dead, *ids)
        pipe.zrem(self.keys.dead_index, *ids)
        removed, _ = pipe.execute()
        return int(removed)

    def expire(self, retention_seconds: float, limit: int = 1000) -> int:
        """Drop records older than the retention (by the shared clock); returns how many."""
        cutoff = int((redis_now(self.client, self.clock) - retention_seconds) * 1000)
        old = self.client.zrangebyscore(self.keys.dead_index, "-inf", cutoff, 0, limit)
        return self.delete(as_text(i) for i in old)

    def replay(
        self,
        records: Sequence[dict[str, Any]],
        enqueue_contacts: Callable[[list[dict[str, Any]]], EnqueueOutcome],
    ) -> ReplayResult:
        """Enqueue the records' contacts again (with the producer's `enqueue_contacts`), then
        delete the records that were enqueued. Records whose contacts too few replicas
        confirmed (LEVERS_REDIS_MIN_REPLICAS) are kept as `not_confirmed`: a second replay of
        them is deduplicated by their dedupe key, so it calls at most once."""
        rows = [replay_row(record) for record in records]
        outcome = enqueue_contacts(rows)
        unconfirmed = {index for index, _ in outcome.unconfirmed}
        result = ReplayResult(
            replayed=[records[i]["id"] for i, _ in outcome.accepted if i not in unconfirmed],
            refused=[(records[r.index]["id"], r.reason) for r in outcome.rejected]
            + [(records[i]["id"], NOT_CONFIRMED) for i in sorted(unconfirmed)],
        )
        self.delete(result.replayed)
        return result


def replay_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The producer row that sends a dead letter's contact again."""
    contact = record["contact"]
    template_id, update_existing = parse_batch_key(record["batch_key"])
    row: dict[str, Any] = {
        "number": contact["numberToCall"],
        "first_name": contact.get("firstName"),
        "last_name": contact.get("lastName"),
        "metadata": contact.get("metadata"),
        "prompt_tags": contact.get("promptTags"),
        "template_id": template_id,
        "update_existing": update_existing,
        "dedupe_key": f"replay:{record['id']}",
    }
    return {k: v for k, v in row.items() if v is not None}
