"""Windows: parsing, and local ranges turned into UTC across daylight-saving changes.

Cases are written in the recipient's local time; `fold=1` marks the second occurrence of a
local time that happens twice.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from worker.policy.decision import Closed, Open, decide
from worker.policy.presets import PRESETS
from worker.policy.schedule import window_from_table
from worker.policy.windows import Range, Window, open_intervals, parse_days, parse_range

NY = "America/New_York"


def local(zone: str, text: str, fold: int = 0) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def window(*hours: str, days: tuple[str, ...] = ("mon-sun",)) -> Window:
    built = window_from_table({"days": list(days), "hours": list(hours)}, "test", "test")
    assert isinstance(built, Window), built
    return built


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-21:00", Range(540, 1260)),
        ("22:00-02:00", Range(1320, 1560)),  # crosses midnight: ends 02:00 the next day
        ("00:00-24:00", Range(0, 1440)),
        ("23:30-00:00", Range(1410, 1440)),
    ],
)
def test_ranges_parse(text: str, expected: Range) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["9-21", "09:00", "09:00-09:00", "24:00-02:00", "25:00-26:00"])
def test_bad_ranges_are_refused(text: str) -> None:
    assert isinstance(parse_range(text), str)


def test_days_accept_names_and_ranges_that_wrap_round_the_week() -> None:
    assert parse_days(["sun-thu"]) == {6, 0, 1, 2, 3}
    assert parse_days(["Friday", "sat"]) == {4, 5}
    assert parse_days(["fri-mon"]) == {4, 5, 6, 0}
    assert isinstance(parse_days(["someday"]), str)


def test_presets_describe_themselves_in_local_time() -> None:
    assert PRESETS["GB"].describe() == "Mon-Fri 09:00-20:00; Sat 09:00-17:00; Sun closed"
    assert PRESETS["AE"].describe() == "every day 09:00-18:00"
    assert PRESETS["SA"].describe().startswith("Sun-Thu 09:00-21:00; Fri, Sat closed")


# (range, local date, expected opening, expected closing), New York, 2026. Clocks go forward
# on 8 March at 02:00 (to 03:00) and back on 1 November at 02:00 (to 01:00).
DST_CASES = [
    # An opening inside the skipped hour opens when the clock jumps, at 03:00 EDT.
    ("02:30-04:00", "2026-03-08", ("2026-03-08T03:00", 0), ("2026-03-08T04:00", 0)),
    # A closing inside the skipped hour closes at the jump too.
    ("01:00-02:30", "2026-03-08", ("2026-03-08T01:00", 0), ("2026-03-08T03:00", 0)),
    ("22:00-02:30", "2026-03-07", ("2026-03-07T22:00", 0), ("2026-03-08T03:00", 0)),
    # An opening at a repeated time opens at its second occurrence (EST), never the first.
    ("01:30-03:00", "2026-11-01", ("2026-11-01T01:30", 1), ("2026-11-01T03:00", 0)),
    # A closing at a repeated time closes at its first occurrence (EDT), never the second.
    ("00:00-01:30", "2026-11-01", ("2026-11-01T00:00", 0), ("2026-11-01T01:30", 0)),
    ("22:00-01:30", "2026-10-31", ("2026-10-31T22:00", 0), ("2026-11-01T01:30", 0)),
    # Window edges on both change days: 09:00 and 20:00 in the day's own offset.
    ("09:00-20:00", "2026-03-08", ("2026-03-08T09:00", 0), ("2026-03-08T20:00", 0)),
    ("09:00-20:00", "2026-11-01", ("2026-11-01T09:00", 0), ("2026-11-01T20:00", 0)),
]


@pytest.mark.parametrize(("hours", "day", "opens", "closes"), DST_CASES)
def test_local_ranges_across_daylight_saving_changes(
    hours: str, day: str, opens: tuple[str, int], closes: tuple[str, int]
) -> None:
    intervals = open_intervals(window(hours), NY, date.fromisoformat(day).toordinal())
    assert intervals == ((local(NY, *opens), local(NY, *closes)),)


def test_opening_at_a_repeated_time_is_exactly_one_hour_later_than_its_first_occurrence() -> None:
    first = local(NY, "2026-11-01T01:30", fold=0)
    second = local(NY, "2026-11-01T01:30", fold=1)
    assert second - first == 3600
    intervals = open_intervals(window("01:30-03:00"), NY, date(2026, 11, 1).toordinal())
    assert intervals[0][0] == second


def test_a_range_wholly_inside_the_skipped_hour_never_opens() -> None:
    assert open_intervals(window("02:10-02:50"), NY, date(2026, 3, 8).toordinal()) == ()


# (window hours, now, "open" until / "closed" until) in New York local time, one zone.
DECISIONS_NY = [
    # Spring forward: the evening before, the next opening is 09:00 EDT, 12.5 hours later.
    ("09:00-20:00", ("2026-03-07T20:30", 0), "closed", ("2026-03-08T09:00", 0)),
    ("09:00-20:00", ("2026-03-08T08:59", 0), "closed", ("2026-03-08T09:00", 0)),
    ("09:00-20:00", ("2026-03-08T19:59", 0), "open", ("2026-03-08T20:00", 0)),
    # Fall back: 08:30 EST is 09:30 by the day before's offset; it must still be closed.
    ("09:00-20:00", ("2026-11-01T08:30", 0), "closed", ("2026-11-01T09:00", 0)),
    ("09:00-20:00", ("2026-10-31T20:00", 0), "closed", ("2026-11-01T09:00", 0)),
    ("09:00-20:00", ("2026-11-01T19:30", 0), "open", ("2026-11-01T20:00", 0)),
    # The first 01:40 (EDT) is before the repeated 01:30 opens; the second (EST) is after.
    ("01:30-03:00", ("2026-11-01T01:40", 0), "closed", ("2026-11-01T01:30", 1)),
    ("01:30-03:00", ("2026-11-01T01:40", 1), "open", ("2026-11-01T03:00", 0)),
]


@pytest.mark.parametrize(("hours", "now", "state", "until"), DECISIONS_NY)
def test_decisions_in_one_zone_across_daylight_saving(
    hours: str, now: tuple[str, int], state: str, until: tuple[str, int]
) -> None:
    expected = (
        Open(local(NY, *until)) if state == "open" else Closed("window_closed", local(NY, *until))
    )
    assert decide(((window(hours), NY),), local(NY, *now)) == expected


def test_a_range_crossing_midnight_belongs_to_the_day_it_starts_on() -> None:
    thursday_night = window("22:00-02:00", days=("thu",))
    riyadh = "Asia/Riyadh"
    constraints = ((thursday_night, riyadh),)
    # Open from Thursday 22:00 into Friday, a day the window does not name.
    assert decide(constraints, local(riyadh, "2026-04-09T23:30")) == Open(
        local(riyadh, "2026-04-10T02:00")
    )
    assert decide(constraints, local(riyadh, "2026-04-10T01:59")) == Open(
        local(riyadh, "2026-04-10T02:00")
    )
    # Friday after 02:00 waits for next Thursday 22:00.
    assert decide(constraints, local(riyadh, "2026-04-10T02:00")) == Closed(
        "window_closed", local(riyadh, "2026-04-16T22:00")
    )
