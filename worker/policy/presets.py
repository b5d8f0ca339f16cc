"""Country presets, kept as data in the same shape a policy file uses for a custom window.

Each preset is what `window = "SA"` (or `by_country` for a Saudi number) means. They are
conservative defaults drawn from the sources named below and in docs/calling-hours.md, not
legal advice: a policy file can replace any of them (`[countries.SA]`) or add a country.

`BOUNDS` are hard limits that apply to every window of a number from those regions, whatever
a template says, `always` included: US telephone-solicitation rules forbid calls before 08:00
and after 21:00 at the called party's location.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from worker.policy.windows import ALWAYS, Window

BY_COUNTRY: Literal["by_country"] = "by_country"

PRESET_DATA: Mapping[str, Mapping[str, Any]] = {
    "SA": {
        "name": "Saudi Arabia",
        "schedule": [{"days": ["sun-thu"], "hours": ["09:00-21:00"]}],
        "ramadan": [{"days": ["sun-thu"], "hours": ["12:00-21:00"]}],
        "public_holidays": "SA",
        "source": "weekend Friday-Saturday; SAMA keeps collection calls to working hours; "
        "shorter working days in Ramadan (Umm al-Qura); public holidays closed",
    },
    "AE": {
        "name": "United Arab Emirates",
        "schedule": [{"days": ["mon-sun"], "hours": ["09:00-18:00"]}],
        "source": "UAE Cabinet Resolution No. 56 of 2024 on telemarketing: calls 09:00-18:00",
    },
    "US": {
        "name": "United States",
        "schedule": [{"days": ["mon-sun"], "hours": ["09:00-20:00"]}],
        "source": "47 CFR 64.1200(c)(1) (TCPA): no solicitation before 08:00 or after 21:00 "
        "local time; an hour of margin each side, inside stricter state rules",
    },
    "GB": {
        "name": "United Kingdom",
        "schedule": [
            {"days": ["mon-fri"], "hours": ["09:00-20:00"]},
            {"days": ["sat"], "hours": ["09:00-17:00"]},
        ],
        "source": "no statutory hours; FCA CONC 7.9.4R (no contact at unreasonable times) "
        "and Ofcom's persistent-misuse policy (unsociable hours); Sunday closed",
    },
}

BOUND_DATA: Mapping[str, Mapping[str, Any]] = {
    "US": {
        # US territories are under the same federal rule.
        "regions": ["US", "PR", "VI", "GU", "AS", "MP"],
        "schedule": [{"days": ["mon-sun"], "hours": ["08:00-21:00"]}],
        "source": "47 CFR 64.1200(c)(1): never before 08:00 or after 21:00 local time",
    },
}


def _build() -> tuple[dict[str, Window], dict[str, Window]]:
    # The same parser as the policy file's custom windows: presets are data, not code.
    from worker.policy.schedule import window_from_table

    presets: dict[str, Window] = {}
    for name, data in PRESET_DATA.items():
        table = {k: v for k, v in data.items() if k not in ("name", "source")}
        presets[name] = _expect(window_from_table(table, name, f"preset {name}"))
    bounds: dict[str, Window] = {}
    for name, data in BOUND_DATA.items():
        table = {"schedule": data["schedule"]}
        window = _expect(window_from_table(table, f"{name} bound", f"bound {name}"))
        for region in data["regions"]:
            bounds[region] = window
    return presets, bounds


def _expect(result: Window | list[str]) -> Window:
    if isinstance(result, list):  # a broken preset is a bug in this file: fail loudly
        raise AssertionError("; ".join(result))
    return result


PRESETS, BOUNDS = _build()
PRESET_NAMES = tuple(PRESETS)
# Every name `window = "..."` and LEVERS_DEFAULT_WINDOW accept.
WINDOW_NAMES = (BY_COUNTRY, ALWAYS.name, *PRESET_NAMES)


def canonical_window_name(text: str) -> str | None:
    """`"sa"` -> `"SA"`, `"By_Country"` -> `"by_country"`; None for an unknown name."""
    lowered = text.strip().lower()
    for name in WINDOW_NAMES:
        if name.lower() == lowered:
            return name
    return None
