"""Dead letters: contacts that will not be sent unless an operator replays them.

One record per contact (see `Sender._letter`): reason, Levers' message or status, attempts,
batch id and key, times, and the contact as it would have been sent. Kept in a hash with a
time index, so they can be listed by reason or batch key, replayed, purged, and expired after
`LEVERS_DEAD_LETTER_RETENTION_SECONDS`.

Replay puts a contact back through the aggregator with the dedupe key `replay:<dead-letter id>`:
fresh, so the original number's dedupe marker does not drop it, yet the same for a second replay
of the same record, so replaying twice (say, after a crash halfway) still calls once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from producers.api import Producer
from worker.contacts import parse_batch_key
from worker.keys import Keys
from worker.store import Clock, as_text


@dataclass
class ReplayResult:
    replayed: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (id, reason): kept


class DeadLetters:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock = time.time) -> None:
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
        """Drop records older than the retention; returns how many."""
        cutoff = int((self.clock() - retention_seconds) * 1000)
        old = self.client.zrangebyscore(self.keys.dead_index, "-inf", cutoff, 0, limit)
        return self.delete(as_text(i) for i in old)

    def replay(self, records: Sequence[dict[str, Any]], producer: Producer) -> ReplayResult:
        """Enqueue the records' contacts again, then delete the records that were enqueued."""
        rows = [replay_row(record) for record in records]
        outcome = producer.enqueue_contacts(rows)
        result = ReplayResult(
            replayed=[records[index]["id"] for index, _ in outcome.accepted],
            refused=[(records[r.index]["id"], r.reason) for r in outcome.rejected],
        )
        self.delete(result.replayed)
        return result


def replay_row(record: dict[str, Any]) -> dict[str, Any]:
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
