"""Held contacts: accepted, not yet callable, waiting in Redis with a reason and a release time.

A contact is held when its calling window is closed in one of its time zones, its not_before
has not come, its time zone is unknown, or its country has no window (worker/eligibility.py
decides; append.lua and begin.lua put it here). Entries live per batch key, beside the pending
buffer (layout in lua/entries.lua): a number has one entry in pending or held, never both.

Every worker's flusher releases what is due (`release_due`, one bounded script call at a time,
so appends are never blocked for long): into the open batch, cutting full batches on the way,
or into the dead letters as `expired` when its expire_at came first. Operators list, release
and expire holds (`levers-admin holds`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis

from worker.buffers import BufferConfig, Due, new_batch_id, read_due
from worker.deadletters import FREQUENCY_CAPPED
from worker.eligibility import Schedule
from worker.keys import Keys
from worker.policy import HOLD_REASONS
from worker.scripting import Clock, as_text, load_script, redis_now, time_arg

NEVER_MS = 2**52  # entries.lua's NEVER: no known release time
# Why a contact is held: its calling window (worker.policy), or its frequency caps.
HELD_REASONS = (*HOLD_REASONS, FREQUENCY_CAPPED)
# Contacts released per script call: bounded so appends interleave with a large release.
RELEASE_CHUNK = 1000
# How long a release call's answer is kept for the same call run again, s: redis-py's ten
# retries take seconds, or minutes when each waits out a 30 s socket timeout.
REPLY_KEPT_SECONDS = 3600


@dataclass(frozen=True)
class Released:
    released: int
    expired: int
    batch_ids: list[str]  # batches cut on the way (full ones)


@dataclass(frozen=True)
class HeldContact:
    batch_key: str
    number: str
    contact_id: str
    contact: dict[str, Any]
    since: float  # seconds, the shared clock
    reason: str
    release_at: float | None  # seconds; None: no known release time
    schedule: Schedule


@dataclass(frozen=True)
class KeyHolds:
    batch_key: str
    held: int
    next_release: float | None  # seconds, the shared clock; None: none known


class Holds:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        config: BufferConfig,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.config = config
        self.clock = clock
        self._release = load_script(client, "release", "states", "entries", "cut")
        self._action = load_script(client, "hold_action", "states", "entries")
        self._due = load_script(client, "due", flags="no-writes")

    # -- the flusher -----------------------------------------------------------------------

    def due(self, limit: int = 100) -> Due:
        """Batch keys with held contacts whose time has come, and the next such time."""
        return read_due(self._due, self.keys.releases, self.clock, limit)

    def release_due(self, batch_key: str, limit: int = RELEASE_CHUNK) -> Released:
        """Release (or expire) up to `limit` due contacts of `batch_key`, in one script call."""
        cuts = limit // self.config.batch_max_size + 2
        batch_ids = [new_batch_id() for _ in range(cuts)]
        reply = self._release(
            keys=[
                self.keys.held(batch_key),
                self.keys.release(batch_key),
                self.keys.releases,
                self.keys.held_since,
                self.keys.pending(batch_key),
                self.keys.order(batch_key),
                self.keys.deadlines,
                self.keys.stats,
                self.keys.gauges,
                self.keys.dead,
                self.keys.dead_index,
                self.keys.inflight,
                self.keys.ready(batch_key),
                self.keys.ready_keys,
                self.keys.reply(batch_ids[0]),
                *(self.keys.batch(b) for b in batch_ids),
            ],
            args=[
                time_arg(self.clock),
                batch_key,
                limit,
                self.config.batch_max_size,
                int(self.config.batch_max_wait_seconds * 1000),
                int(self.config.outbox_grace_seconds * 1000),
                REPLY_KEPT_SECONDS,
                *batch_ids,
            ],
        )
        released, expired, *cut = reply
        return Released(int(released), int(expired), [as_text(b) for b in cut])

    # -- reading ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Held contacts by reason (every reason, zeros included)."""
        raw = self.client.hmget(self.keys.gauges, [f"held:{r}" for r in HELD_REASONS])
        return {r: max(0, int(v or 0)) for r, v in zip(HELD_REASONS, raw, strict=True)}

    def oldest_age(self) -> float | None:
        """Seconds the oldest hold has waited, or None when nothing is held."""
        first = self.client.zrange(self.keys.held_since, 0, 0, withscores=True)
        if not first:
            return None
        return max(0.0, redis_now(self.client, self.clock) - float(first[0][1]) / 1000)

    def per_key(self) -> list[KeyHolds]:
        """Held contacts and the next release time per batch key."""
        entries = _scored(self.client.zrange(self.keys.releases, 0, -1, withscores=True))
        keys = [as_text(k) for k, _ in entries]
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hlen(self.keys.held(key))
        counts = pipe.execute()
        return [
            KeyHolds(key, int(count), None if score >= NEVER_MS else score / 1000)
            for key, (_, score), count in zip(keys, entries, counts, strict=True)
            if count
        ]

    def entries(
        self,
        *,
        batch_key: str | None = None,
        reason: str | None = None,
        contact_ids: frozenset[str] = frozenset(),
        limit: int | None = None,
    ) -> Iterator[HeldContact]:
        """Held contacts, oldest hold first, filtered (an operator's view: it reads them all)."""
        found, start = 0, 0
        total = int(self.client.zcard(self.keys.held_since))
        while (limit is None or found < limit) and start < total:
            page, start = self.page(start, 500, batch_key=batch_key or "", reason=reason or "")
            for _, held in page:
                if contact_ids and held.contact_id not in contact_ids:
                    continue
                yield held
                found += 1
                if limit is not None and found >= limit:
                    return

    def page(
        self, start: int, count: int, *, batch_key: str = "", reason: str = ""
    ) -> tuple[list[tuple[int, HeldContact]], int]:
        """(rank, held contact) of the `count` entries from rank `start` of the oldest-first
        index that match `batch_key` and `reason` when given, and the rank after those read.
        Filters look at the index member and the stored reason before anything is decoded."""
        members = _scored(
            self.client.zrange(self.keys.held_since, start, start + count - 1, withscores=True)
        )
        prefix = f"{batch_key} "
        found = [
            (start + i, *_member(member), since)
            for i, (member, since) in enumerate(members)
            if not batch_key or as_text(member).startswith(prefix)
        ]
        return self._load(found, reason), start + count

    def key_page(
        self, batch_key: str, start: int, count: int, *, reason: str = ""
    ) -> tuple[list[tuple[int, HeldContact]], int]:
        """As `page`, over one batch key's holds in the order they are released."""
        numbers = _scored(
            self.client.zrange(
                self.keys.release(batch_key), start, start + count - 1, withscores=True
            )
        )
        pipe = self.client.pipeline(transaction=False)
        for number, _ in numbers:
            pipe.hget(self.keys.held(batch_key), number)
            pipe.zscore(self.keys.held_since, f"{batch_key} {as_text(number)}")
        replies = pipe.execute() if numbers else []
        rows = (
            ((start + i, batch_key, as_text(number), since), value, release)
            for i, ((number, release), value, since) in enumerate(
                zip(numbers, replies[::2], replies[1::2], strict=True)
            )
        )
        return _matching(rows, reason), start + count

    def find(self, since_ms: int, contact_id: str) -> HeldContact | None:
        """The hold of `contact_id` that began at `since_ms` (as a listed page showed it)."""
        return next(iter(self.find_many([(since_ms, contact_id)])), None)

    def find_many(self, refs: Sequence[tuple[int, str]]) -> list[HeldContact]:
        """The holds still held of (since ms, contact id) pairs, as a listed page showed them,
        in two round trips whatever their number."""
        pipe = self.client.pipeline(transaction=False)
        for since_ms, _ in refs:
            pipe.zrangebyscore(self.keys.held_since, since_ms, since_ms, withscores=True)
        members = [m for found in (pipe.execute() if refs else []) for m in found]
        loaded = self._load([(0, *_member(member), since) for member, since in members], "")
        wanted = set(refs)
        return [h for _, h in loaded if (round(h.since * 1000), h.contact_id) in wanted]

    def _load(
        self, found: Sequence[tuple[int, str, str, Any]], reason: str
    ) -> list[tuple[int, HeldContact]]:
        """(rank, hold) of (rank, batch key, number, since ms) still held, and held for
        `reason` when given: one round trip; two with a reason, whose release times are then
        read for the matches only (a filter matching few reads little)."""
        pipe = self.client.pipeline(transaction=False)
        for _, key, number, _ in found:
            pipe.hget(self.keys.held(key), number)
            if not reason:
                pipe.zscore(self.keys.release(key), number)
        replies = pipe.execute() if found else []
        if not reason:
            return _matching(zip(found, replies[::2], replies[1::2], strict=True), "")
        kept = [
            (row, value)
            for row, value in zip(found, replies, strict=True)
            if value is not None and _reason_of(as_text(value)) == reason
        ]
        for (_, key, number, _), _ in kept:
            pipe.zscore(self.keys.release(key), number)
        scores = pipe.execute() if kept else []
        return _matching(((r, v, s) for (r, v), s in zip(kept, scores, strict=True)), "")

    # -- operators -------------------------------------------------------------------------

    def act(
        self,
        held: HeldContact,
        action: Literal["release", "expire"],
        *,
        time_zone: str | None = None,
        note: str = "",
    ) -> bool:
        """Release (due now) or expire one held contact; False if it is no longer held as seen."""
        return self.act_many([held], action, time_zone=time_zone, note=note) == 1

    def act_many(
        self,
        chosen: Sequence[HeldContact],
        action: Literal["release", "expire"],
        *,
        time_zone: str | None = None,
        note: str = "",
    ) -> int:
        """Release (make due now) or expire each held contact, one atomic script call each,
        pipelined a chunk at a time; returns how many were still held as the caller saw them."""
        done = 0
        for start in range(0, len(chosen), RELEASE_CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for held in chosen[start : start + RELEASE_CHUNK]:
                self._action(
                    keys=[
                        self.keys.held(held.batch_key),
                        self.keys.release(held.batch_key),
                        self.keys.releases,
                        self.keys.held_since,
                        self.keys.gauges,
                        self.keys.stats,
                        self.keys.dead,
                        self.keys.dead_index,
                    ],
                    args=[
                        time_arg(self.clock),
                        held.batch_key,
                        held.number,
                        action,
                        held.contact_id,
                        time_zone or "",
                        note,
                    ],
                    client=pipe,
                )
            done += sum(bool(reply) for reply in pipe.execute())
        return done


def _reason_of(value: str) -> str:
    """The reason of a stored hold (its fifth part), without decoding the rest."""
    return value.split("\n", 5)[4]


def _member(member: Any) -> tuple[str, str]:
    """(batch key, number) of a held:since member "<batch key> <number>"."""
    key, _, number = as_text(member).rpartition(" ")
    return key, number


def _matching(
    rows: Iterable[tuple[tuple[int, str, str, Any], Any, Any]], reason: str
) -> list[tuple[int, HeldContact]]:
    """((rank, batch key, number, since ms), stored hold, release score) -> (rank, hold) of
    those still held, and held for `reason` when given (checked before anything is decoded)."""
    found = []
    for (rank, key, number, since), value, release in rows:
        if value is None or since is None:
            continue
        text = as_text(value)
        if reason and _reason_of(text) != reason:
            continue
        found.append((rank, _parse(key, number, text, float(since), release)))
    return found


def _scored(reply: Any) -> list[tuple[Any, float]]:
    """A ZRANGE WITHSCORES reply, typed."""
    return [(member, float(score)) for member, score in reply]


def _parse(batch_key: str, number: str, value: str, since: float, score: Any) -> HeldContact:
    contact_id, entry, _, schedule, reason, _ = value.split("\n")
    release = None if score is None or float(score) >= NEVER_MS else float(score) / 1000
    return HeldContact(
        batch_key=batch_key,
        number=number,
        contact_id=json.loads(contact_id),
        contact=json.loads(entry),
        since=float(since) / 1000,
        reason=reason,
        release_at=release,
        schedule=Schedule.from_json(json.loads(schedule) if schedule else None),
    )
