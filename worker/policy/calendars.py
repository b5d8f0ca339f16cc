"""Calendars a window can depend on: Ramadan (Umm al-Qura) and public holidays.

Both come from well-kept libraries rather than tables kept here: `hijridate` converts dates
with the Umm al-Qura calendar Saudi Arabia uses, and `holidays` knows each country's public
holidays (for Saudi Arabia: Founding Day, Eid al-Fitr, the Day of Arafah and Eid al-Adha,
National Day, and the observed days that follow them). Answers are cached per date.
"""

from __future__ import annotations

import threading
from datetime import date
from functools import lru_cache
from typing import Any

RAMADAN = 9  # the ninth month of the Hijri year

_lock = threading.Lock()
_holidays: dict[str, Any] = {}


@lru_cache(maxsize=4096)
def is_ramadan(day: date) -> bool:
    """Whether local date `day` falls in Ramadan by the Umm al-Qura calendar.

    hijridate covers 1924-08-01 to 2077-11-16. Outside it the answer is True: Ramadan hours
    are the shorter ones, so an unknown date is called only when both sets of hours allow it.
    """
    from hijridate import Gregorian

    try:
        return bool(Gregorian(day.year, day.month, day.day).to_hijri().month == RAMADAN)
    except OverflowError:
        return True


@lru_cache(maxsize=8192)
def holiday_name(country: str, day: date) -> str | None:
    """The public holiday(s) of `country` on `day`, or None on an ordinary day."""
    with _lock:  # a holidays object fills in each year on first use: not safe to share
        calendar = _holidays.get(country)
        if calendar is None:
            import holidays

            calendar = _holidays[country] = holidays.country_holidays(country)
        name = calendar.get(day)
    return str(name) if name else None


def supports_holidays(country: str) -> bool:
    import holidays

    return country in holidays.list_supported_countries()
