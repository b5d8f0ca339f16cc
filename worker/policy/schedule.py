"""A custom window from its table: the keys a policy file (and a preset) uses to write one.

    days = ["sun-thu"]                      # day names or ranges; with `hours`
    hours = ["09:00-12:00", "22:00-02:00"]  # local ranges; may cross midnight
    schedule = [{days = ["mon-fri"], hours = ["09:00-20:00"]},    # instead of days + hours,
                {days = ["sat"], hours = ["09:00-17:00"]}]        # when days differ
    ramadan = [{days = ["sun-thu"], hours = ["12:00-21:00"]}]     # during Ramadan (Umm al-Qura)
    public_holidays = "SA"                  # closed on that country's public holidays

Every problem is returned, each with the TOML path of the value at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.policy import calendars
from worker.policy.windows import Range, Week, Window, build_week, parse_days, parse_range

WINDOW_KEYS = ("days", "hours", "schedule", "ramadan", "public_holidays")


def has_window_keys(table: Mapping[str, Any]) -> bool:
    return any(key in table for key in WINDOW_KEYS)


def window_from_table(table: Mapping[str, Any], name: str, path: str) -> Window | list[str]:
    """The window the table describes, or every problem found in it."""
    problems: list[str] = []
    has_pair = "days" in table or "hours" in table
    week: Week | None = None
    if has_pair and "schedule" in table:
        problems.append(f"{path}: give either days + hours or schedule, not both")
    elif "schedule" in table:
        week = _rules(table["schedule"], f"{path}.schedule", problems)
    elif has_pair:
        week = _rule_week(table, path, problems)
    else:
        problems.append(f"{path}: a custom window needs days + hours (or schedule)")
    ramadan = None
    if "ramadan" in table:
        ramadan = _rules(table["ramadan"], f"{path}.ramadan", problems)
    holidays = table.get("public_holidays")
    if holidays is not None:
        if not isinstance(holidays, str) or not calendars.supports_holidays(holidays.upper()):
            problems.append(
                f"{path}.public_holidays: {holidays!r} is not a country code the holidays "
                "library knows (e.g. SA, AE, US, GB)"
            )
            holidays = None
        else:
            holidays = holidays.upper()
    if week is not None and not any(week) and not (ramadan and any(ramadan)):
        problems.append(f"{path}: the window is never open")
    if problems or week is None:
        return problems
    return Window(name=name, week=week, ramadan=ramadan, holidays=holidays)


def _rules(value: Any, path: str, problems: list[str]) -> Week | None:
    """A list of {days, hours} tables as one week, or None (problems noted)."""
    if not isinstance(value, list) or not value:
        problems.append(f"{path}: must be a non-empty list of {{days = [...], hours = [...]}}")
        return None
    rules: list[tuple[set[int], list[Range]]] = []
    before = len(problems)
    for index, rule in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(rule, Mapping):
            problems.append(f"{where}: must be a table {{days = [...], hours = [...]}}")
            continue
        unknown = sorted(set(rule) - {"days", "hours"})
        if unknown:
            problems.append(f"{where}: unknown key(s) {', '.join(unknown)} (days, hours)")
        _rule(rule, where, problems, rules)
    return None if len(problems) > before else build_week(rules)


def _rule_week(table: Mapping[str, Any], path: str, problems: list[str]) -> Week | None:
    rules: list[tuple[set[int], list[Range]]] = []
    before = len(problems)
    _rule(table, path, problems, rules)
    return None if len(problems) > before else build_week(rules)


def _rule(
    table: Mapping[str, Any],
    path: str,
    problems: list[str],
    rules: list[tuple[set[int], list[Range]]],
) -> None:
    days = _days(table.get("days"), f"{path}.days", problems)
    ranges = _hours(table.get("hours"), f"{path}.hours", problems)
    if days is not None and ranges is not None:
        rules.append((days, ranges))


def _days(value: Any, path: str, problems: list[str]) -> set[int] | None:
    if value is None:
        problems.append(f'{path}: missing (e.g. days = ["mon-fri"])')
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(f'{path}: must be a non-empty list of day names (e.g. ["sun-thu"])')
        return None
    days = parse_days(value)
    if isinstance(days, str):
        problems.append(f"{path}: {days}")
        return None
    return days


def _hours(value: Any, path: str, problems: list[str]) -> list[Range] | None:
    if value is None:
        problems.append(f'{path}: missing (e.g. hours = ["09:00-21:00"])')
        return None
    if not isinstance(value, list) or not value:
        problems.append(f'{path}: must be a non-empty list of ranges (e.g. ["09:00-21:00"])')
        return None
    ranges: list[Range] = []
    for index, item in enumerate(value):
        parsed = parse_range(item) if isinstance(item, str) else f"{item!r} is not a string"
        if isinstance(parsed, str):
            problems.append(f"{path}[{index}]: {parsed}")
        else:
            ranges.append(parsed)
    return ranges if len(ranges) == len(value) else None
