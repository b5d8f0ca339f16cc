"""Operators' actions on what waits to be called, each recorded in the audit.

`levers-admin` and the console (/console on levers-ingest) act through these, so an action
does the same and leaves the same audit line (who, what, target, note, counts) whichever door
it came through. Pausing, resuming and cancelling a template are `worker.control.Control`'s,
which records them itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import redis

from worker.audit import Audit
from worker.contacts import mask_number
from worker.deadletters import DeadLetters, EnqueueOutcome, ReplayResult
from worker.holds import HeldContact, Holds
from worker.keys import Keys
from worker.scripting import Clock
from worker.suppression import Suppression


class Operations:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock | None = None) -> None:
        self.client = client
        self.keys = keys
        self.audit = Audit(client, keys, clock)
        self.dead = DeadLetters(client, keys, clock)
        self.suppression = Suppression(client, keys, clock)

    def act_on_holds(
        self,
        who: str,
        holds: Holds,
        chosen: Sequence[HeldContact],
        action: Literal["release", "expire"],
        *,
        note: str,
        target: str,
        time_zone: str | None = None,
    ) -> int:
        """Release (due now) or expire each chosen hold; returns how many were still held."""
        done = holds.act_many(chosen, action, time_zone=time_zone, note=note)
        details: dict[str, Any] = {"done": done}
        if time_zone:
            details["time_zone"] = time_zone
        self.audit.record(who, f"holds {action}", target, note, **details)
        return done

    def replay_dead_letters(
        self,
        who: str,
        records: Sequence[dict[str, Any]],
        enqueue_contacts: Callable[[list[dict[str, Any]]], EnqueueOutcome],
        *,
        note: str,
        target: str,
    ) -> ReplayResult:
        result = self.dead.replay(records, enqueue_contacts)
        self.audit.record(
            who,
            "dead-letters replay",
            target,
            note,
            replayed=len(result.replayed),
            kept=len(result.refused),
        )
        return result

    def purge_dead_letters(self, who: str, ids: Sequence[str], *, note: str, target: str) -> int:
        removed = self.dead.delete(ids)
        self.audit.record(who, "dead-letters purge", target, note, purged=removed)
        return removed

    def suppress(
        self, who: str, numbers: Sequence[str], *, note: str, expire_at: float | None = None
    ) -> int:
        """Put E.164 numbers on the do-not-call list; returns how many were new."""
        added = self.suppression.add(numbers, note=note, expire_at=expire_at)
        self.audit.record(who, "suppress add", masked(numbers), note, added=added)
        return added

    def unsuppress(self, who: str, numbers: Sequence[str], *, note: str) -> int:
        removed = self.suppression.remove(numbers)
        self.audit.record(who, "suppress remove", masked(numbers), note, removed=removed)
        return removed

    def reveal(self, who: str, what: str, *, note: str = "") -> None:
        """A whole number was shown to `who` (the console masks them unless asked)."""
        self.audit.record(who, "reveal number", what, note)


def masked(numbers: Sequence[str]) -> str:
    return ",".join(mask_number(n) for n in numbers)
