"""Decisions: may a recipient be called at an instant, and until when (or from when).

    Decision = Open(until) | Closed(reason, until) | Expired(expire_at, blocked_by)

A decision is computed from constraints, pairs of (window, zone): each window must be open in
its zone at the same instant. Instants are POSIX seconds (what Redis TIME gives), compared in
UTC; windows are turned into UTC intervals per local date by `windows.open_intervals`.

* Open: callable now; `until` is the first instant it may not be (a window closes somewhere,
  or `expire_at`), or None when nothing ends it. Re-check a batch still waiting at `until`.
  (A window open for longer than `SEARCH_DAYS` reports where the search stopped.)
* Closed: not now; `until` is the next instant it is callable in every zone at once (the
  release time of a hold), or None when no such instant is known: an unknown zone, a country
  without a window, or zones whose windows never overlap within `SEARCH_DAYS`. `reason`
  says what holds it.
* Expired: `expire_at` has passed, or the contact cannot be called before it (`blocked_by`
  names what would have held it): it goes to the dead letters, never out late.

Everything that depends only on the constraints and the day is cached: the day is cut into
segments with one answer each, so a decision is a dictionary hit and a bisection.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, Literal

from worker.policy.windows import Window, local_ordinal, open_intervals, zone

WINDOW_CLOSED = "window_closed"
NOT_BEFORE = "not_before"
UNKNOWN_TIME_ZONE = "unknown_time_zone"
NO_WINDOW_FOR_COUNTRY = "no_window_for_country"
EXPIRED = "expired"
HoldReason = Literal["window_closed", "not_before", "unknown_time_zone", "no_window_for_country"]
HOLD_REASONS: tuple[HoldReason, ...] = (
    "window_closed",
    "not_before",
    "unknown_time_zone",
    "no_window_for_country",
)

SEARCH_DAYS = 100  # how far ahead a common opening of every zone is looked for
DAY = 86400

Constraint = tuple[Window, str]  # (window, IANA zone name)


@dataclass(frozen=True, slots=True)
class Open:
    until: float | None
    allowed: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Closed:
    reason: HoldReason
    until: float | None
    allowed: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Expired:
    expire_at: float
    blocked_by: HoldReason | None = None  # None: expire_at has passed
    allowed: ClassVar[bool] = False
    reason: ClassVar[str] = EXPIRED


Decision = Open | Closed | Expired


def decide(
    constraints: tuple[Constraint, ...],
    at: float,
    not_before: float | None = None,
    expire_at: float | None = None,
) -> Decision:
    """The decision at `at` for a contact that must wait for `not_before` and the windows."""
    if expire_at is not None and at >= expire_at:
        return Expired(expire_at)
    if not_before is not None and at < not_before:
        is_open, boundary = window_state(constraints, not_before)
        if is_open:
            return _unless_expired(Closed("not_before", not_before), expire_at)
        if boundary is None:
            return Closed("window_closed", None)
        return _unless_expired(Closed("not_before", boundary), expire_at)
    is_open, boundary = window_state(constraints, at)
    if is_open:
        if expire_at is not None and (boundary is None or expire_at < boundary):
            boundary = expire_at
        return Open(boundary)
    if boundary is None:
        return Closed("window_closed", None)
    return _unless_expired(Closed("window_closed", boundary), expire_at)


def held(reason: HoldReason, at: float, expire_at: float | None = None) -> Closed | Expired:
    """A hold with no known release time (unknown zone, no window for the country)."""
    if expire_at is not None and at >= expire_at:
        return Expired(expire_at)
    return Closed(reason, None)


def _unless_expired(closed: Closed, expire_at: float | None) -> Closed | Expired:
    if expire_at is not None and closed.until is not None and closed.until >= expire_at:
        return Expired(expire_at, blocked_by=closed.reason)
    return closed


# -- windows in UTC ------------------------------------------------------------------------


def window_state(constraints: tuple[Constraint, ...], at: float) -> tuple[bool, float | None]:
    """(open at `at`?, the instant that changes): the cached form of `combined_state`."""
    if not constraints:
        return True, None
    starts, states = _timeline(constraints, int(at // DAY))
    return states[bisect_right(starts, at) - 1]


@lru_cache(maxsize=4096)
def _timeline(
    constraints: tuple[Constraint, ...], day: int
) -> tuple[list[float], list[tuple[bool, float | None]]]:
    """One UTC day cut into segments, each with one answer from `combined_state`."""
    t: float = day * DAY
    end = t + DAY
    starts: list[float] = []
    states: list[tuple[bool, float | None]] = []
    while t < end:
        state = combined_state(constraints, t)
        starts.append(t)
        states.append(state)
        if state[1] is None:
            break
        t = state[1]
    return starts, states


def combined_state(constraints: tuple[Constraint, ...], at: float) -> tuple[bool, float | None]:
    """Open in every zone at `at` (until the first closes), or when all are next open at once.

    A sweep over each constraint's open intervals in time order: while the current ones do
    not overlap, the ones that end before the latest start are passed over.
    """
    streams = [_intervals_from(window, zone_name, at) for window, zone_name in constraints]
    current = []
    for stream in streams:
        first = next(stream, None)
        if first is None:
            return False, None
        current.append(first)
    while True:
        start = max(interval[0] for interval in current)
        end = min(interval[1] for interval in current)
        if start < end:
            return (True, end) if start <= at else (False, start)
        for index, interval in enumerate(current):
            if interval[1] <= start:
                following = next(streams[index], None)
                if following is None:
                    return False, None
                current[index] = following


def _intervals_from(window: Window, zone_name: str, at: float) -> Iterator[tuple[int, int]]:
    """One window's open intervals in one zone that end after `at`, merged where they touch,
    up to SEARCH_DAYS ahead (the last one's end may be where the search stops)."""
    # Two days back: a range may cross midnight, and a date may repeat when clocks go back.
    first = local_ordinal(zone(zone_name), at) - 2
    merged: tuple[int, int] | None = None
    for ordinal in range(first, first + SEARCH_DAYS + 3):
        for start, stop in open_intervals(window, zone_name, ordinal):
            if stop <= at:
                continue
            if merged is None:
                merged = (start, stop)
            elif start <= merged[1]:
                merged = (merged[0], max(merged[1], stop))
            else:
                yield merged
                merged = (start, stop)
    if merged is not None:
        yield merged
