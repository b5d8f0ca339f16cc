"""Frequency caps per number: at most N calls in a rolling period, and a least gap between two.

    [caps]                       # every template's calls to a number, together
    min_gap = "4h"
    limits = [{calls = 1, period = "1d"}, {calls = 3, period = "7d"}, {calls = 10, period = "30d"}]

The same table under a template (`[templates."<id>".caps]`, or `[default.caps]`) counts that
template's calls only, on top of the overall caps. Periods are rolling ("1d" is any 24 hours).
Overall caps default to the values above; per-template caps default to none. A key left out
keeps its default; `limits = []` and `min_gap = "0s"` turn caps off.

Enforcing caps needs Redis (the count must be checked and recorded atomically with marking a
batch as sending); `Caps.next_allowed` states the rule in plain Python for that to follow.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_PERIOD = 365 * 86400
MAX_GAP = 30 * 86400
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")


@dataclass(frozen=True, slots=True)
class Limit:
    calls: int
    period: int  # seconds, rolling

    def __str__(self) -> str:
        return f"{self.calls} per {format_duration(self.period)}"


@dataclass(frozen=True, slots=True)
class Caps:
    limits: tuple[Limit, ...] = ()
    min_gap: int = 0  # seconds that must separate two calls to a number
    # A contact over its cap: "hold" it until the cap frees, or "dead_letter" it at once
    # (as `frequency_capped`). Either way, one whose expire_at comes first is dead-lettered.
    over: str = "hold"

    @property
    def longest(self) -> int:
        """How long a call must be remembered to apply these caps (a Redis TTL), seconds."""
        return max([self.min_gap, *(limit.period for limit in self.limits)])

    def describe(self) -> str:
        parts = [str(limit) for limit in self.limits]
        if self.min_gap:
            parts.append(f"at least {format_duration(self.min_gap)} apart")
        return ", ".join(parts) or "none"

    def next_allowed(self, calls: Iterable[float], at: float) -> float | None:
        """None if a call at `at` keeps within the caps, given the earlier calls' instants;
        else the first instant one would (no further calls assumed)."""
        past = sorted(t for t in calls if t <= at)
        earliest = at
        if self.min_gap and past and at - past[-1] < self.min_gap:
            earliest = max(earliest, past[-1] + self.min_gap)
        for limit in self.limits:
            inside = [t for t in past if at - t < limit.period]
            if len(inside) >= limit.calls:
                # Allowed once enough of them have left the rolling period.
                earliest = max(earliest, inside[len(inside) - limit.calls] + limit.period)
        return None if earliest == at else earliest


DAY = 86400
DEFAULT_CAPS = Caps(
    limits=(Limit(1, DAY), Limit(3, 7 * DAY), Limit(10, 30 * DAY)),
    min_gap=4 * 3600,
)
NO_CAPS = Caps()
CAPS_KEYS = ("limits", "min_gap", "over")
OVER = ("hold", "dead_letter")


def parse_duration(value: object) -> int | None:
    """Seconds in a duration such as "90s", "30m", "4h", "7d" (or "0"); None if not one."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text == "0":
        return 0
    match = _DURATION.match(text)
    return int(match[1]) * UNITS[match[2]] if match else None


def format_duration(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds and seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


def caps_from_table(value: Any, path: str, base: Caps) -> Caps | list[str]:
    """Caps from a `caps` table; keys left out keep `base`'s values."""
    if not isinstance(value, Mapping):
        return [f"{path}: must be a table with limits and/or min_gap"]
    problems: list[str] = []
    unknown = sorted(set(value) - set(CAPS_KEYS))
    if unknown:
        problems.append(f"{path}: unknown key(s) {', '.join(unknown)} (limits, min_gap, over)")
    over = base.over
    if "over" in value:
        if value["over"] not in OVER:
            problems.append(f'{path}.over: {value["over"]!r} is not "hold" or "dead_letter"')
        else:
            over = value["over"]
    min_gap = base.min_gap
    if "min_gap" in value:
        gap = parse_duration(value["min_gap"])
        if gap is None or gap > MAX_GAP:
            problems.append(
                f"{path}.min_gap: {value['min_gap']!r} is not a duration up to 30d "
                '(e.g. "4h"; "0" for none)'
            )
        else:
            min_gap = gap
    limits = base.limits
    if "limits" in value:
        parsed = _limits(value["limits"], f"{path}.limits", problems)
        limits = parsed if parsed is not None else limits
    return problems or Caps(limits, min_gap, over)


def _limits(value: Any, path: str, problems: list[str]) -> tuple[Limit, ...] | None:
    if not isinstance(value, list):
        problems.append(f'{path}: must be a list of {{calls = N, period = "1d"}}')
        return None
    limits: list[Limit] = []
    valid = True
    for index, item in enumerate(value):
        found = _limit(item, f"{path}[{index}]", limits)
        if isinstance(found, Limit):
            limits.append(found)
        else:
            problems.extend(found)
            valid = False
    return tuple(sorted(limits, key=lambda limit: limit.period)) if valid else None


def _limit(item: Any, where: str, earlier: list[Limit]) -> Limit | list[str]:
    if not isinstance(item, Mapping):
        return [f'{where}: must be a table {{calls = N, period = "1d"}}']
    problems = []
    unknown = sorted(set(item) - {"calls", "period"})
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)} (calls, period)")
    calls = item.get("calls")
    if type(calls) is not int or calls < 1:  # a TOML boolean is a Python int: refuse by type
        problems.append(f"{where}.calls: {calls!r} is not a whole number of calls >= 1")
    period = parse_duration(item.get("period"))
    if period is None or not 0 < period <= MAX_PERIOD:
        problems.append(
            f"{where}.period: {item.get('period')!r} is not a duration from 1s to 365d "
            '(e.g. "1d", "7d")'
        )
    elif any(limit.period == period for limit in earlier):
        problems.append(f"{where}.period: {item['period']!r} is given twice")
    if problems or type(calls) is not int or period is None:
        return problems
    return Limit(calls, period)
