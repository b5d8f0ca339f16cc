"""The pending buffers: contacts waiting in Redis for their batch to fill or to come of age.

One buffer per batch key (a hash of contacts by number plus their arrival order), a deadline
per key in one sorted set, and dedupe markers. Every change is one Lua call (`append.lua`,
`cut_due.lua`), so any number of workers on any number of hosts share one buffer per key. A
cut hands the batch to the outbox (`worker.outbox`) inside the same call: from then on the
outbox owns it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis

from worker.contacts import Contact
from worker.durability import NO_WAIT, Durability
from worker.eligibility import SEND_NOW, Drop, Hold, Schedule, Send, Verdict
from worker.errors import NotReplicatedError
from worker.keys import Keys
from worker.scripting import Clock, as_text, load_script, redis_now, time_arg

AppendStatus = Literal["appended", "merged", "duplicate", "redelivered"]


def new_batch_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class BufferConfig:
    batch_max_size: int = 100
    batch_max_wait_seconds: float = 2.0
    dedupe_window_seconds: int = 3600
    # With dedupe off, how long a contact id is remembered against redelivery, s.
    message_marker_seconds: int = 3600
    # A cut batch whose send message is not on the queue by then is queued by the reaper, s.
    outbox_grace_seconds: float = 15.0


@dataclass(frozen=True)
class AppendResult:
    status: AppendStatus
    batch_id: str | None  # set when this append filled the batch and cut it
    cut_size: int


@dataclass(frozen=True)
class KeyStatus:
    batch_key: str
    pending: int
    oldest_age_seconds: float


@dataclass(frozen=True)
class Due:
    """What a schedule holds that is due, read with the shared clock in one round trip."""

    now: float  # seconds, the shared clock
    members: list[str]
    next_due: float | None  # seconds, the earliest due time of all (due or not)


def read_due(script: Any, key: str, clock: Clock | None, limit: int) -> Due:
    now_ms, next_ms, *members = script(keys=[key], args=[time_arg(clock), limit])
    return Due(
        int(now_ms) / 1000,
        [as_text(m) for m in members],
        None if int(next_ms) < 0 else int(next_ms) / 1000,
    )


class Buffers:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        config: BufferConfig,
        clock: Clock | None = None,
        durability: Durability = NO_WAIT,
    ) -> None:
        self.client = client
        self.keys = keys
        self.config = config
        self.clock = clock
        self.durability = durability
        # An append grows memory: refused at maxmemory (noeviction), and retried by dramatiq.
        self._append = load_script(client, "append", "states", "entries", "cut", flags=None)
        # A cut only moves contacts on towards being sent, which frees them.
        self._cut_due = load_script(client, "cut_due", "states", "entries", "cut")
        self._due = load_script(client, "due", flags="no-writes")

    def append(
        self, contact: Contact, contact_id: str, verdict: Verdict = SEND_NOW
    ) -> AppendResult:
        """Add a validated contact; `contact_id` is stable across dramatiq redeliveries.
        `verdict` is the calling policy's (worker.eligibility): send it on, hold it, or
        dead-letter it as expired."""
        return self.append_many([(contact, contact_id, verdict)])[0]

    def append_many(self, contacts: Sequence[tuple[Contact, str, Verdict]]) -> list[AppendResult]:
        """Add validated contacts in one round trip (one append.lua call each, pipelined).

        Each call is atomic on its own; if the round trip fails halfway, a redelivery of the
        same contact ids appends only those that did not make it. With LEVERS_REDIS_MIN_REPLICAS
        the round trip ends with WAIT; too few replicas raise NotReplicatedError, whose
        `result` holds the results (the appends were made on the primary).
        """
        pipe = self.client.pipeline(transaction=False)
        batch_ids = []
        for contact, contact_id, verdict in contacts:
            keys, args, batch_id = self._append_call(contact, contact_id, verdict)
            self._append(keys=keys, args=args, client=pipe)
            batch_ids.append(batch_id)
        self.durability.add_wait(pipe)
        replies = pipe.execute()
        short: NotReplicatedError | None = None
        try:
            replies = self.durability.check(self.client, "append", replies)
        except NotReplicatedError as exc:
            short, replies = exc, exc.result  # type: ignore[assignment]
        results = []
        for (status, cut_size), batch_id in zip(replies, batch_ids, strict=True):
            cut = int(cut_size)
            name: AppendStatus = as_text(status)  # type: ignore[assignment]
            results.append(AppendResult(name, batch_id if cut else None, cut))
        if short is not None:
            short.result = results
            raise short
        return results

    def _append_call(
        self, contact: Contact, contact_id: str, verdict: Verdict
    ) -> tuple[list[str], list[Any], str]:
        key = contact.batch_key
        token = f"k:{contact.dedupe_key}" if contact.dedupe_key else f"n:{contact.number}"
        batch_id = new_batch_id()
        keys = [
            self.keys.pending(key),
            self.keys.order(key),
            self.keys.deadlines,
            self.keys.stats,
            self.keys.gauges,
            self.keys.dedupe(key, token),
            self.keys.message(contact_id),
            self.keys.batch(batch_id),
            self.keys.inflight,
            self.keys.ready(key),
            self.keys.ready_keys,
            self.keys.held(key),
            self.keys.release(key),
            self.keys.releases,
            self.keys.held_since,
            self.keys.dead,
            self.keys.dead_index,
        ]
        schedule = Schedule.of(contact)
        args = [
            time_arg(self.clock),
            key,
            contact.number,
            json.dumps(contact.to_levers(), separators=(",", ":")),
            contact_id,
            self.config.batch_max_size,
            int(self.config.batch_max_wait_seconds * 1000),
            self.config.dedupe_window_seconds,
            self.config.message_marker_seconds,
            batch_id,
            int(self.config.outbox_grace_seconds * 1000),
            *_placement(verdict),
            schedule.expire_ms or 0,
            schedule.to_json(),
        ]
        return keys, args, batch_id

    def due(self, limit: int = 100) -> Due:
        """Batch keys whose deadline has passed (oldest first), and the next deadline."""
        return read_due(self._due, self.keys.deadlines, self.clock, limit)

    def cut_due(self, batch_key: str) -> tuple[str, int] | None:
        """Cut one overdue batch of `batch_key`; None when it was not due (any more)."""
        batch_id = new_batch_id()
        size = int(
            self._cut_due(
                keys=[
                    self.keys.pending(batch_key),
                    self.keys.order(batch_key),
                    self.keys.deadlines,
                    self.keys.batch(batch_id),
                    self.keys.inflight,
                    self.keys.stats,
                    self.keys.gauges,
                    self.keys.ready(batch_key),
                    self.keys.ready_keys,
                ],
                args=[
                    time_arg(self.clock),
                    batch_key,
                    batch_id,
                    self.config.batch_max_size,
                    int(self.config.batch_max_wait_seconds * 1000),
                    int(self.config.outbox_grace_seconds * 1000),
                ],
            )
        )
        return (batch_id, size) if size else None

    def pending_status(self) -> list[KeyStatus]:
        """Pending contacts and oldest age per batch key, in two round trips.

        The deadlines set names exactly the keys that have pending contacts (a key gets a
        deadline with its first contact and loses it when its buffer empties), so there is no
        need to scan the keyspace, which holds a dedupe marker per contact.
        """
        now = redis_now(self.client, self.clock)
        keys = sorted(as_text(k) for k in self.client.zrange(self.keys.deadlines, 0, -1))
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.zcard(self.keys.order(key))
            pipe.zrange(self.keys.order(key), 0, 0, withscores=True)
        replies = pipe.execute()
        result = []
        for key, count, oldest in zip(keys, replies[::2], replies[1::2], strict=True):
            if count:
                age = max(0.0, now - float(oldest[0][1]) / 1000)
                result.append(KeyStatus(key, int(count), age))
        return result


def _placement(verdict: Verdict) -> tuple[str, int, str]:
    """append.lua's ARGV[12..14]: where the contact goes, its release time, and why it is held
    or dropped."""
    if isinstance(verdict, Send):
        return "send", 0, ""
    if isinstance(verdict, Hold):
        return "hold", verdict.release_ms, verdict.reason
    assert isinstance(verdict, Drop)
    return "drop", 0, verdict.reason
