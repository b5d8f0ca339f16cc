"""Unknown outcomes settled by their call-ended events, or resent after a grace period.

An `unknown_outcome` dead letter is a contact whose request may or may not have reached Levers.
Levers reports every call it places with a `phone_call.ended` webhook, so:

* its event arrives: the contact was called. `outcome.lua` removes the dead letter in the same
  call that records the event; when the event came first (the request timed out on our side
  after Levers had already called), the pass below finds the dead letter and settles it;
* no event after LEVERS_OUTCOME_GRACE_SECONDS: Levers placed no call. With
  LEVERS_RESEND_UNKNOWN=after_grace the contact goes back through the aggregator by the
  dead-letter replay path (dedupe key `replay:<dead-letter id>`, so a second pass cannot send
  it twice), but only while the webhook path is shown to work: some event was recorded within
  the grace period. Otherwise it stays in the dead letters, as with `false`.

`Unknowns.run` is the flusher's housekeeping (every worker, every 10 s; passes may overlap,
every step is idempotent). It reads the dead letters written since its last pass (a cursor in
Redis) into a watch list of the unknown ones, then looks at each watched one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from worker.deadletters import UNKNOWN_OUTCOME, DeadLetters, ReplayResult
from worker.keys import Keys
from worker.scripting import Clock, as_text, load_script, redis_now, time_arg

log = logging.getLogger("levers.unknowns")

Replay = Callable[[Sequence[dict[str, Any]]], ReplayResult]


@dataclass
class UnknownPass:
    watched: int = 0  # newly watched this pass
    settled: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # due, but the webhook path shows no life
    dropped: list[str] = field(default_factory=list)  # due, not resent by the mode: left alone


class Unknowns:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        dead: DeadLetters,
        replay: Replay,
        *,
        mode: str,
        grace_seconds: float,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.dead = dead
        self.replay = replay
        self.mode = mode
        self.grace_seconds = grace_seconds
        self.clock = clock
        self._settle = load_script(client, "settle_unknown")

    def run(self, limit: int = 1000) -> UnknownPass:
        result = UnknownPass(watched=self._watch_new(limit))
        ids = [as_text(i) for i in self.client.zrange(self.keys.unknown_watch, 0, limit - 1)]
        due: list[str] = []
        for dl_id in ids:
            verdict = self._look(dl_id)
            if verdict == "settled":
                result.settled.append(dl_id)
            elif verdict == "due":
                due.append(dl_id)
        if due:
            self._resolve(due, result)
        return result

    def _watch_new(self, limit: int, pages: int = 10) -> int:
        """Add the unknown_outcome dead letters written since the last pass to the watch.

        The cursor is a time (ms): a whole batch is dead-lettered at one time, so a page may
        end inside a group of equal times; the next page then skips what was read of it.
        Reading a dead letter twice is harmless (ZADD NX)."""
        cursor = int(self.client.get(self.keys.unknown_cursor) or 0)
        offset = added = 0
        for _ in range(pages):
            raw = self.client.zrangebyscore(
                self.keys.dead_index, cursor, "+inf", offset, limit, withscores=True
            )
            scores = {as_text(row[0]): int(row[1]) for row in raw}
            if not scores:
                break
            unknown = {
                r["id"]: scores[r["id"]]
                for r in self.dead.get(list(scores))
                if r.get("reason") == UNKNOWN_OUTCOME and r["id"] in scores
            }
            if unknown:
                added += int(self.client.zadd(self.keys.unknown_watch, unknown, nx=True) or 0)
            top = max(scores.values())
            if top == cursor:
                offset += len(scores)
            else:
                cursor, offset = top, sum(1 for s in scores.values() if s == top)
            if len(scores) < limit:
                break
        self.client.set(self.keys.unknown_cursor, cursor)
        return added

    def _look(self, dl_id: str) -> str:
        record = self.dead.get([dl_id])
        contact_id = record[0]["contact_id"] if record else ""
        return as_text(
            self._settle(
                keys=[
                    self.keys.dead,
                    self.keys.dead_index,
                    self.keys.unknown_watch,
                    self.keys.stats,
                    self.keys.outcome(contact_id),
                ],
                args=[time_arg(self.clock), dl_id, int(self.grace_seconds * 1000)],
            )
        )

    def _resolve(self, due: list[str], result: UnknownPass) -> None:
        if self.mode != "after_grace":
            # Left in the dead letters for an operator; a late event still settles it.
            self.client.zrem(self.keys.unknown_watch, *due)
            result.dropped.extend(due)
            return
        if not self.webhooks_alive():
            result.held.extend(due)
            log.warning(
                "unknown outcomes past their grace period are not resent: no call-ended event "
                "was recorded within it, so the webhook path may be down",
                extra={"contacts": len(due)},
            )
            return
        records = self.dead.get(due)
        replayed = self.replay(records)
        for dl_id, reason in replayed.refused:
            log.error("unknown outcome could not be resent", extra={"id": dl_id, "reason": reason})
        self.client.zrem(self.keys.unknown_watch, *due)
        result.resent.extend(replayed.replayed)
        if replayed.replayed:
            log.warning(
                "unknown outcomes resent: no call-ended event within the grace period",
                extra={"contacts": len(replayed.replayed)},
            )

    def webhooks_alive(self) -> bool:
        """Some call-ended event was recorded within the grace period."""
        last = self.client.get(self.keys.webhook_last)
        now = redis_now(self.client, self.clock)
        return last is not None and int(last) / 1000 >= now - self.grace_seconds
