"""The do-not-call list: numbers that must never be called, each with an optional expiry.

One hash in Redis, number (E.164) -> "expire ms|added ms|note", plus a sorted set of the
entries that expire, for housekeeping. It is checked twice: when a contact is accepted (the
producer and the aggregator reject it, reason `suppressed`) and again in the script that marks
its batch sending (begin.lua takes it out of the request and dead-letters it as `suppressed`),
so a number suppressed after acceptance is still never called. An entry whose expiry has
passed no longer suppresses, whether or not housekeeping has removed it yet.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from worker.contacts import ContactRules, normalise_number
from worker.errors import ContactError
from worker.keys import Keys
from worker.scripting import Clock, as_text, redis_now

MAX_NOTE = 200
BATCH = 1000


@dataclass(frozen=True)
class Entry:
    number: str
    added_at: float  # seconds, the shared clock
    expire_at: float | None
    note: str


@dataclass
class ImportReport:
    added: int = 0
    rejected: list[tuple[int, str, str]] | None = None  # (line, raw value, why)


class Suppression:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock | None = None) -> None:
        self.client = client
        self.keys = keys
        self.clock = clock

    def add(self, numbers: Iterable[str], *, note: str = "", expire_at: float | None = None) -> int:
        """Suppress E.164 numbers (until `expire_at`, seconds; None: for good). Returns how
        many were not suppressed before."""
        now_ms = int(redis_now(self.client, self.clock) * 1000)
        expire_ms = 0 if expire_at is None else int(expire_at * 1000)
        value = f"{expire_ms}|{now_ms}|{note[:MAX_NOTE]}"
        added = 0
        for chunk in _chunks(numbers):
            pipe = self.client.pipeline(transaction=True)
            for number in chunk:
                pipe.hset(self.keys.suppressed, number, value)
                if expire_ms:
                    pipe.zadd(self.keys.suppressed_expiry, {number: expire_ms})
                else:
                    pipe.zrem(self.keys.suppressed_expiry, number)
            replies = pipe.execute()
            added += sum(int(r) for r in replies[::2])
        return added

    def remove(self, numbers: Iterable[str]) -> int:
        removed = 0
        for chunk in _chunks(numbers):
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(self.keys.suppressed, *chunk)
            pipe.zrem(self.keys.suppressed_expiry, *chunk)
            removed += int(pipe.execute()[0])
        return removed

    def check(self, numbers: list[str]) -> set[str]:
        """The numbers of `numbers` suppressed now."""
        if not numbers:
            return set()
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        pipe.hmget(self.keys.suppressed, numbers)
        (seconds, micros), values = pipe.execute()
        now_ms = (
            int(self.clock() * 1000) if self.clock else int(seconds) * 1000 + int(micros) // 1000
        )
        return {n for n, v in zip(numbers, values, strict=True) if active(v, now_ms)}

    def count(self) -> int:
        return int(self.client.hlen(self.keys.suppressed))

    def entries(self, match: str | None = None) -> Iterator[Entry]:
        """Every entry (an operator's view: it reads them all), those whose number contains
        `match` when given."""
        pattern = f"*{match}*" if match else None
        for number, value in self.client.hscan_iter(self.keys.suppressed, match=pattern):
            yield _entry(number, value)

    def lookup(self, number: str) -> Entry | None:
        """The entry of one E.164 number, or None when it is not on the list."""
        value = self.client.hget(self.keys.suppressed, number)
        return None if value is None else _entry(number, value)

    def page(self, cursor: int = 0, count: int = 50) -> tuple[list[Entry], int]:
        """About `count` entries from an HSCAN cursor, and the next cursor (0: the end)."""
        cursor, found = self.client.hscan(self.keys.suppressed, cursor, count=count)
        assert isinstance(found, dict)  # not NOVALUES
        return [_entry(n, v) for n, v in found.items()], int(cursor)

    def expire(self, limit: int = 1000) -> int:
        """Drop entries whose expiry has passed (housekeeping); returns how many."""
        now_ms = int(redis_now(self.client, self.clock) * 1000)
        old = [
            as_text(n)
            for n in self.client.zrangebyscore(
                self.keys.suppressed_expiry, "-inf", now_ms, 0, limit
            )
        ]
        return self.remove(old) if old else 0

    def import_file(
        self,
        path: Path,
        *,
        rules: ContactRules,
        note: str = "",
        expire_at: float | None = None,
    ) -> ImportReport:
        """Suppress the numbers of a text file (one a line) or a CSV file (a column named
        number, phone or numberToCall; else the first), streamed in chunks. Lines that are not
        numbers are reported by line, not suppressed."""
        report = ImportReport(rejected=[])
        chunk: list[str] = []
        for line, raw in _numbers_of(path):
            try:
                chunk.append(normalise_number(raw, rules.default_region))
            except ContactError as exc:
                assert report.rejected is not None
                report.rejected.append((line, raw, str(exc)))
                continue
            if len(chunk) >= BATCH:
                report.added += self.add(chunk, note=note, expire_at=expire_at)
                chunk = []
        if chunk:
            report.added += self.add(chunk, note=note, expire_at=expire_at)
        return report


def _entry(number: bytes | str, value: bytes | str) -> Entry:
    expire_ms, added_ms, note = as_text(value).split("|", 2)
    return Entry(
        as_text(number),
        int(added_ms) / 1000,
        None if int(expire_ms) == 0 else int(expire_ms) / 1000,
        note,
    )


def active(value: bytes | str | None, now_ms: int) -> bool:
    """Whether a stored entry suppresses at `now_ms` (its expiry not yet passed)."""
    if value is None:
        return False
    expire_ms = int(as_text(value).split("|", 1)[0])
    return expire_ms == 0 or expire_ms > now_ms


def _numbers_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, raw value) for each number of a text or CSV file, 1-based."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        first = handle.readline()
        if "," not in first and ";" not in first:
            if first.strip() and first.strip().lower() not in ("number", "phone"):
                yield 1, first.strip()
            for line, text in enumerate(handle, start=2):
                if text.strip():
                    yield line, text.strip()
            return
        header = next(csv.reader([first]))
        names = [name.strip() for name in header]
        column = next(
            (names.index(n) for n in ("number", "phone", "numberToCall") if n in names), 0
        )
        for line, row in enumerate(csv.reader(handle), start=2):
            if len(row) > column and row[column].strip():
                yield line, row[column].strip()


def _chunks(numbers: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for number in numbers:
        chunk.append(number)
        if len(chunk) >= BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def entry_json(entry: Entry) -> str:
    return json.dumps(entry.__dict__, sort_keys=True)
