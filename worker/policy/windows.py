"""Calling windows: weekly local time ranges, and where they fall in UTC on a given local date.

A `Window` says, for each day of the week, which local time ranges are open. A range belongs
to the day it starts on and may cross midnight ("22:00-02:00" on Monday is open from Monday
22:00 to Tuesday 02:00). A window may also carry calendars: other ranges during Ramadan (the
Umm al-Qura calendar) and days closed for a country's public holidays.

`open_intervals(window, zone, day)` turns one local date's ranges into UTC instants with
`zoneinfo`, and is where daylight saving is handled, conservatively:

* an opening at a local time that does not exist (the clock jumps over it) opens when the
  clock jumps, the first instant it reads a later time; a closing there closes at that jump;
* an opening at a local time that happens twice opens at its second occurrence, and a closing
  there closes at its first, so a repeated hour never opens a window early or closes it late.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from worker.policy import calendars

MINUTES_PER_DAY = 24 * 60
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
_TIME = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class Range:
    """Local minutes from the start of the day it opens on; `end` > 1440 crosses midnight."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end % MINUTES_PER_DAY or self.end)}"


Week = tuple[tuple[Range, ...], ...]  # seven entries, Monday first (date.weekday())


# eq=False: windows are built once, at start-up, and compared and hashed by identity, which
# keeps the per-date caches below cheap to key.
@dataclass(frozen=True, eq=False)
class Window:
    name: str
    week: Week
    ramadan: Week | None = None  # ranges that replace `week` during Ramadan (Umm al-Qura)
    holidays: str | None = None  # ISO country whose public holidays close the whole day
    always: bool = False  # no window at all: open at every instant

    def ranges_on(self, day: date) -> tuple[Range, ...]:
        """The open ranges that start on local date `day`."""
        if self.holidays and calendars.holiday_name(self.holidays, day):
            return ()
        if self.ramadan is not None and calendars.is_ramadan(day):
            return self.ramadan[day.weekday()]
        return self.week[day.weekday()]

    def note_on(self, day: date) -> str | None:
        """Why `day` is not an ordinary day for this window (for `policy explain`)."""
        if self.holidays:
            name = calendars.holiday_name(self.holidays, day)
            if name:
                return f"public holiday in {self.holidays}: {name}"
        if self.ramadan is not None and calendars.is_ramadan(day):
            return "Ramadan hours, Umm al-Qura calendar"
        return None

    def describe(self) -> str:
        if self.always:
            return "always open (no calling window)"
        text = describe_week(self.week)
        if self.ramadan is not None:
            text += f"; during Ramadan (Umm al-Qura): {describe_week(self.ramadan)}"
        if self.holidays:
            text += f"; closed on {self.holidays} public holidays"
        return text


ALWAYS = Window(
    name="always",
    week=tuple((Range(0, MINUTES_PER_DAY),) for _ in range(7)),
    always=True,
)


# -- parsing (used for presets and for the policy file) ------------------------------------


def parse_time(text: str) -> int | None:
    match = _TIME.match(text.strip())
    if not match:
        return None
    minutes = int(match[1]) * 60 + int(match[2])
    return minutes if minutes <= MINUTES_PER_DAY else None


def parse_range(text: str) -> Range | str:
    """A range such as "09:00-21:00" or "22:00-02:00" (crosses midnight), or a problem."""
    start_text, sep, end_text = text.partition("-")
    start, end = parse_time(start_text), parse_time(end_text)
    if not sep or start is None or end is None:
        return f"{text!r} is not a time range HH:MM-HH:MM (00:00 to 24:00)"
    if start == MINUTES_PER_DAY:
        return f"{text!r} starts at 24:00; start the range at 00:00 of the next day"
    if start == end:
        return f"{text!r} is empty (use 00:00-24:00 for the whole day)"
    if end < start:
        end += MINUTES_PER_DAY  # crosses midnight: ends on the next day
    return Range(start, end)


def parse_days(items: Iterable[str]) -> set[int] | str:
    """Day names ("mon", "monday") and ranges ("sun-thu", "fri-mon" wraps round)."""
    days: set[int] = set()
    for item in items:
        first, sep, last = item.strip().lower().partition("-")
        a, b = _day(first), _day(last) if sep else _day(first)
        if a is None or b is None:
            return f"{item!r} is not a day or a range of days (mon, tue, …, sun; sun-thu)"
        days.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return days


def _day(text: str) -> int | None:
    text = text.strip()
    if text in DAY_NAMES:
        return DAY_NAMES.index(text)
    if text in _FULL_DAY_NAMES:
        return _FULL_DAY_NAMES.index(text)
    return None


def build_week(rules: Iterable[tuple[set[int], list[Range]]]) -> Week:
    """Merge (days, ranges) rules into one week; each day's ranges in order of start."""
    per_day: list[list[Range]] = [[] for _ in range(7)]
    for days, ranges in rules:
        for day in days:
            per_day[day].extend(ranges)
    return tuple(tuple(sorted(set(ranges), key=lambda r: (r.start, r.end))) for ranges in per_day)


def describe_week(week: Week) -> str:
    """Text such as "Sun-Thu 09:00-21:00; Fri, Sat closed": days with equal hours grouped."""
    groups: dict[tuple[Range, ...], list[int]] = {}
    for day, ranges in enumerate(week):
        groups.setdefault(ranges, []).append(day)
    parts = []
    for ranges, days in groups.items():
        hours = ", ".join(str(r) for r in ranges) if ranges else "closed"
        parts.append(f"{_day_list(days)} {hours}")
    return "; ".join(parts)


def _day_list(days: list[int]) -> str:
    if len(days) == 7:
        return "every day"
    present = set(days)
    names = [d.capitalize() for d in DAY_NAMES]
    runs = []
    # Runs of consecutive days; one may wrap round the end of the week (Sun-Thu).
    for first in sorted(present):
        if (first - 1) % 7 in present and len(present) < 7:
            continue
        last = first
        while (last + 1) % 7 in present:
            last = (last + 1) % 7
        length = (last - first) % 7 + 1
        if length == 1:
            runs.append(names[first])
        elif length == 2:
            runs.append(f"{names[first]}, {names[last]}")
        else:
            runs.append(f"{names[first]}-{names[last]}")
    return ", ".join(runs)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# -- local ranges to UTC -------------------------------------------------------------------


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    # ZoneInfo's own cache keeps only 8 instances strongly: a number with 42 zones would
    # read the zone files again on every decision.
    return ZoneInfo(name)


@lru_cache(maxsize=65536)
def open_intervals(window: Window, zone_name: str, ordinal: int) -> tuple[tuple[int, int], ...]:
    """UTC [open, close) POSIX seconds of the ranges that start on local date `ordinal`."""
    day = date.fromordinal(ordinal)
    tz = zone(zone_name)
    out = []
    for r in window.ranges_on(day):
        start = local_to_utc(tz, day, r.start, opening=True)
        end = local_to_utc(tz, day, r.end, opening=False)
        if start < end:  # a range wholly inside a skipped hour never opens
            out.append((start, end))
    return tuple(out)


def local_to_utc(tz: ZoneInfo, day: date, minute: int, *, opening: bool) -> int:
    """The instant a local wall-clock time `minute` after midnight of `day` is reached."""
    when = day + timedelta(days=minute // MINUTES_PER_DAY)
    minute %= MINUTES_PER_DAY
    naive = datetime(when.year, when.month, when.day, minute // 60, minute % 60)
    first = int(naive.replace(tzinfo=tz, fold=0).timestamp())
    second = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    if first == second:
        return first
    if first < second:  # the clock shows this time twice (it was set back)
        return second if opening else first
    # The clock jumps over this time: fold=1 reads it with the offset after the jump (an
    # instant before the jump), fold=0 with the one before (after it). The jump lies between.
    return _transition(tz, second, first)


def _transition(tz: ZoneInfo, low: int, high: int) -> int:
    """The first second in (low, high] whose UTC offset differs from the offset at `low`."""
    before = _offset(tz, low)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(tz, middle) == before:
            low = middle
        else:
            high = middle
    return high


def _offset(tz: ZoneInfo, instant: int) -> timedelta | None:
    return datetime.fromtimestamp(instant, tz).utcoffset()


def local_ordinal(tz: ZoneInfo, instant: float) -> int:
    return datetime.fromtimestamp(instant, tz).toordinal()
