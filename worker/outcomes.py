"""The outcomes room: what happened on each call, per contact id, for a while.

    store.record(event)            -> Recorded (recorded | duplicate | second_event | unknown_batch)
    store.keep_unmatched(event, reason)
    store.contact(contact_id)      -> the outcome record, or None
    store.batch(batch_id)          -> the batch record, its contacts' outcomes, its dead letters

An event is matched to its contact through the correlation the sender put in every contact's
metadata (`levers_batcher`: batch id, contact id, index in the request, time appended), which
Levers echoes as `requestMetadata`. It matches when its batch is one this namespace knows
(`LEVERS_BATCH_RETENTION_SECONDS`): an event of another deployment that shares the Levers
account, or one that arrives after its batch record expired, is kept as unmatched, counted,
and never acted on.

Recording is one Lua call (`outcome.lua`): the record (with `LEVERS_OUTCOME_RETENTION_SECONDS`),
the batch's index of outcomes, and, when the contact sits in the dead letters as
`unknown_outcome`, its removal from them: Levers reported the call, so it was made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from worker.events import label_candidate
from worker.keys import Keys
from worker.scripting import Clock, as_text, compact, load_script, redis_now, time_arg

MAX_UNMATCHED = 10_000  # unmatched events kept at most (the oldest go first)


@dataclass(frozen=True)
class Recorded:
    status: str  # recorded | duplicate | second_event | unknown_batch
    batch_key: str = ""
    call_output: str = ""  # metric label (recorded only)
    ended_reason: str = ""  # metric label (recorded only)
    settled: str = ""  # the unknown_outcome dead letter this event settled, if any


class OutcomeStore:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        retention_seconds: int,
        max_labels: int = 20,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.retention_seconds = retention_seconds
        self.max_labels = max_labels
        self.clock = clock
        self._record = load_script(client, "outcome")
        self._note = load_script(client, "outcome_note")

    def record(self, event: dict[str, Any]) -> Recorded:
        """Record a matched event (one with a correlation). Idempotent on the event id."""
        correlation = event["correlation"]
        contact_id, batch_id = correlation["contact_id"], correlation["batch_id"]
        outcome = event["outcome"]
        record = {
            "contactId": contact_id,
            "batchId": batch_id,
            "eventId": event["eventId"],
            "endedAt": event["sentAt"],
            "acceptedAt": _seconds(correlation.get("at")),
            "numberTo": event.get("numberTo"),
            "outcome": outcome,
        }
        index = correlation.get("index")
        candidates = [f"{batch_id}:{index}"] if isinstance(index, int) and index >= 0 else []
        summary = " ".join(
            str(outcome.get(name, "-")) for name in ("deliveryStatus", "endedReason", "duration")
        )
        status, key, call_output, ended_reason, settled = self._record(
            keys=[
                self.keys.outcome(contact_id),
                self.keys.batch_outcomes(batch_id),
                self.keys.batch(batch_id),
                self.keys.dead,
                self.keys.dead_index,
                self.keys.stats,
                self.keys.unknown_watch,
                self.keys.outcome_labels("call_output"),
                self.keys.outcome_labels("ended_reason"),
                self.keys.webhook_last,
            ],
            args=[
                time_arg(self.clock),
                contact_id,
                event["eventId"],
                compact(record),
                self.retention_seconds,
                self.max_labels,
                label_candidate(outcome.get("callOutput")),
                label_candidate(outcome.get("endedReason")),
                summary,
                *candidates,
            ],
        )
        return Recorded(
            as_text(status),
            as_text(key),
            as_text(call_output),
            as_text(ended_reason),
            as_text(settled),
        )

    def note(self, contact_id: str, name: str, value: Any) -> bool:
        """Add `name` to a contact's outcome record (the retry it caused), atomically."""
        done = self._note(
            keys=[self.keys.outcome(contact_id)],
            args=[time_arg(self.clock), name, compact(value)],
        )
        return bool(done)

    def keep_unmatched(self, event: dict[str, Any], reason: str) -> bool:
        """Keep an event that matches no contact (for `levers-admin outcomes unmatched`).
        Returns False when this event id was kept before (a redelivered message)."""
        now = redis_now(self.client, self.clock)
        entry = {
            "eventId": event["eventId"],
            "reason": reason,
            "problem": event.get("problem"),
            "receivedAt": now,
            "endedAt": event.get("sentAt"),
            "numberTo": event.get("numberTo"),
            "correlation": event.get("correlation"),
            "outcome": event.get("outcome") or {},
        }
        if not self.client.hsetnx(self.keys.unmatched, event["eventId"], compact(entry)):
            return False
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.keys.unmatched_index, {event["eventId"]: int(now * 1000)})
        pipe.hincrby(self.keys.stats, "events_unmatched", 1)
        pipe.set(self.keys.webhook_last, int(now * 1000))
        pipe.execute()
        self._cap()
        return True

    def _cap(self) -> None:
        excess = int(self.client.zcard(self.keys.unmatched_index)) - MAX_UNMATCHED
        if excess > 0:
            oldest = [
                as_text(i) for i in self.client.zrange(self.keys.unmatched_index, 0, excess - 1)
            ]
            self._drop_unmatched(oldest)

    def _drop_unmatched(self, ids: list[str]) -> int:
        if not ids:
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.unmatched, *ids)
        pipe.zrem(self.keys.unmatched_index, *ids)
        removed, _ = pipe.execute()
        return int(removed)

    def expire(self, limit: int = 1000) -> int:
        """Drop unmatched events older than the retention (outcome records expire by TTL)."""
        cutoff = int((redis_now(self.client, self.clock) - self.retention_seconds) * 1000)
        old = self.client.zrangebyscore(self.keys.unmatched_index, "-inf", cutoff, 0, limit)
        return self._drop_unmatched([as_text(i) for i in old])

    # -- reading -----------------------------------------------------------------------

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.outcome(contact_id))
        return None if raw is None else dict(json.loads(raw))

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        """The batch's record (key, size, state, times), each of its contacts' outcomes that
        arrived, and its dead letters; None when nothing of it is known any more."""
        raw = {
            as_text(k): as_text(v)
            for k, v in self.client.hgetall(self.keys.batch(batch_id)).items()
        }
        summaries = {
            as_text(k): as_text(v)
            for k, v in self.client.hgetall(self.keys.batch_outcomes(batch_id)).items()
        }
        if not raw and not summaries:
            return None
        outcomes = []
        for contact_id in sorted(summaries):
            record = self.contact(contact_id)
            if record is not None:
                outcomes.append(record)
        size = int(raw.get("size", 0) or 0)
        dead_ids = [f"{batch_id}:{i}" for i in range(size)]
        dead = (
            [json.loads(r) for r in self.client.hmget(self.keys.dead, dead_ids) if r]
            if dead_ids
            else []
        )
        raw.pop("contacts", None)  # in flight, the record holds every contact: not shown
        return {"batchId": batch_id, "record": raw, "outcomes": outcomes, "deadLetters": dead}

    def unmatched(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent unmatched events, newest first."""
        ids = [as_text(i) for i in self.client.zrevrange(self.keys.unmatched_index, 0, limit - 1)]
        if not ids:
            return []
        return [json.loads(r) for r in self.client.hmget(self.keys.unmatched, ids) if r]

    def unmatched_count(self) -> int:
        return int(self.client.zcard(self.keys.unmatched_index))


def _seconds(ms: Any) -> float | None:
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return None
    return ms / 1000
