"""Frequency caps: the rule in plain Python that the send-time check in Redis follows."""

from __future__ import annotations

import pytest

from worker.policy.caps import DEFAULT_CAPS, Caps, Limit, caps_from_table, parse_duration

H = 3600
D = 86400


def test_defaults_are_one_a_day_three_a_week_ten_a_month_four_hours_apart() -> None:
    assert DEFAULT_CAPS.limits == (Limit(1, D), Limit(3, 7 * D), Limit(10, 30 * D))
    assert DEFAULT_CAPS.min_gap == 4 * H
    assert DEFAULT_CAPS.longest == 30 * D
    assert DEFAULT_CAPS.describe() == "1 per 1d, 3 per 7d, 10 per 30d, at least 4h apart"


@pytest.mark.parametrize(
    ("calls", "at", "expected"),
    [
        ([], 0, None),
        # One a day: the next call waits until a day after the last.
        ([0], 10 * H, D),
        ([0], D, None),
        # Three a week: calls on days 0, 2 and 4 hold a fourth until day 7.
        ([0, 2 * D, 4 * D], 6 * D, 7 * D),
        ([0, 2 * D, 4 * D], 7 * D, None),
        # Calls later than `at` do not count (they are not in the past).
        ([5 * D], 4 * D, None),
    ],
)
def test_next_allowed_under_the_default_caps(
    calls: list[float], at: float, expected: float | None
) -> None:
    assert DEFAULT_CAPS.next_allowed(calls, at) == expected


def test_the_least_gap_applies_alone() -> None:
    gap_only = Caps(min_gap=4 * H)
    assert gap_only.next_allowed([0], 3 * H) == 4 * H
    assert gap_only.next_allowed([0], 4 * H) is None
    assert Caps().next_allowed([0, 1, 2], 3) is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("4h", 14400), ("7d", 604800), ("0", 0)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["4 hours", "1w", "-1d", "", "1.5h"])
def test_bad_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_a_caps_table_keeps_the_defaults_it_does_not_name() -> None:
    caps = caps_from_table({"min_gap": "2h"}, "caps", DEFAULT_CAPS)
    assert caps == Caps(DEFAULT_CAPS.limits, 2 * H)
    off = caps_from_table({"limits": [], "min_gap": "0"}, "caps", DEFAULT_CAPS)
    assert off == Caps()
    assert off.longest == 0
