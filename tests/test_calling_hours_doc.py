"""The worked examples of docs/calling-hours.md, checked against the policy code.

Each row of the table between the `worked-examples` markers is a decision in the recipient's
local time; this test makes the same decision and compares, weekday names included, so the
page cannot drift from what the pipeline does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from worker.policy.decision import Closed, Decision, Open
from worker.policy.policy import CallingPolicy, Rule
from worker.policy.presets import PRESETS
from worker.policy.schedule import window_from_table
from worker.policy.windows import ALWAYS, Window

DOC = Path(__file__).parent.parent / "docs" / "calling-hours.md"
LOCAL = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\d{4}-\d\d-\d\d \d\d:\d\d)")


@dataclass(frozen=True)
class Example:
    preset: str
    number: str
    window: str
    zone: str
    at: str
    decision: str

    def __str__(self) -> str:
        return f"{self.number} {self.window} at {self.at}"


def examples() -> list[Example]:
    text = DOC.read_text()
    table = text.split("<!-- worked-examples:start -->", 1)[1]
    table = table.split("<!-- worked-examples:end -->", 1)[0]
    rows = [line for line in table.strip().splitlines() if line.startswith("| ")][2:]
    found = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        found.append(Example(*cells[:6]))
    return found


def policy_for(window: str) -> CallingPolicy:
    if window == "by_country":
        return CallingPolicy()
    if window == "always":
        return CallingPolicy(default=Rule(ALWAYS))
    hours = re.fullmatch(r"hours (\d\d:\d\d-\d\d:\d\d)", window)
    assert hours, f"unknown window {window!r} in the doc's table"
    built = window_from_table({"days": ["mon-sun"], "hours": [hours[1]]}, "custom", "doc")
    assert isinstance(built, Window)
    return CallingPolicy(default=Rule(built))


def instant(zone: str, text: str) -> float:
    """'Thu 2026-04-09 21:00' in `zone` as POSIX seconds; the weekday must be right."""
    match = LOCAL.fullmatch(text)
    assert match, f"{text!r} is not 'Day YYYY-MM-DD HH:MM'"
    moment = datetime.fromisoformat(match[2]).replace(tzinfo=ZoneInfo(zone))
    assert moment.strftime("%a") == match[1], f"{match[2]} is a {moment:%A}"
    return moment.timestamp()


def expected(zone: str, text: str) -> Decision:
    if text == "open, no end":
        return Open(None)
    if text.startswith("open until "):
        return Open(instant(zone, text.removeprefix("open until ")))
    held = re.fullmatch(r"held \((\w+)\)(?: until (.+)|, no end)", text)
    assert held, f"cannot read the decision {text!r}"
    until = instant(zone, held[2]) if held[2] else None
    return Closed(held[1], until)  # type: ignore[arg-type]


def test_the_table_has_an_example_for_every_preset() -> None:
    shown = {example.preset for example in examples()}
    assert {*PRESETS, "always", "by_country"} <= shown, shown


@pytest.mark.parametrize("example", examples(), ids=str)
def test_each_worked_example_is_what_the_policy_decides(example: Example) -> None:
    at = instant(example.zone, example.at)
    decision = policy_for(example.window).decide(example.number, None, at)
    assert decision == expected(example.zone, example.decision), example
