"""Retry rules and outcome routes in the calling policy: parsing, and the caps check that
`levers-admin policy check` runs (a retry the same policy's caps would never let through)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from worker.errors import PolicyError
from worker.policy import load_policy, parse_policy
from worker.policy.caps import Caps, Limit
from worker.policy.cli import check
from worker.policy.outcomes import RetryRule, caps_conflicts

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
NO_CAPS_TABLE = {"caps": {"limits": [], "min_gap": "0"}}


def test_retries_are_off_by_default() -> None:
    policy = parse_policy({})
    assert not policy.rule_for(None).retries.enabled
    assert not policy.rule_for(TEMPLATE).outcomes.enabled


def test_a_template_retry_rule_and_route() -> None:
    policy = parse_policy(
        {
            **NO_CAPS_TABLE,
            "templates": {
                TEMPLATE: {
                    "retries": {
                        "delivery_status": ["fail"],
                        "ended_reasons": ["Voicemail"],
                        "delays": ["30m", "1h", "2h"],
                    },
                    "outcomes": {
                        "actor": "crm_call_ended",
                        "queue": "crm",
                        "url": "https://x.example/h",
                    },
                }
            },
        }
    )
    rule = policy.rule_for(TEMPLATE)
    assert rule.retries.delays == (1800, 3600, 7200)
    assert rule.retries.wants({"deliveryStatus": "fail", "endedReason": "customer-busy"})
    assert rule.retries.wants({"deliveryStatus": "pass", "endedReason": "voicemail"})
    assert not rule.retries.wants({"deliveryStatus": "pass", "endedReason": "customer-ended-call"})
    assert (rule.retries.delay(1), rule.retries.delay(3), rule.retries.delay(4)) == (
        1800,
        7200,
        None,
    )
    assert (rule.outcomes.actor, rule.outcomes.queue, rule.outcomes.url) == (
        "crm_call_ended",
        "crm",
        "https://x.example/h",
    )
    # Other templates keep the default: nothing.
    assert not policy.rule_for(None).retries.enabled


def test_a_template_inherits_the_default_tables_and_can_turn_retries_off() -> None:
    retries = {"delivery_status": ["fail"], "delays": ["1h"]}
    policy = parse_policy(
        {
            **NO_CAPS_TABLE,
            "default": {"retries": retries, "outcomes": {"actor": "done"}},
            "templates": {TEMPLATE: {"retries": {"delays": []}}},
        }
    )
    assert policy.rule_for(None).retries.enabled
    assert policy.rule_for(None).outcomes.actor == "done"
    assert not policy.rule_for(TEMPLATE).retries.enabled
    assert policy.rule_for(TEMPLATE).outcomes.queue == "default"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"retries": {"delays": ["30m"], "max": 3}}, "default.retries: unknown key(s) max"),
        (
            {"retries": {"delivery_status": ["maybe"], "delays": ["1h"]}},
            "maybe is not pass or fail",
        ),
        ({"retries": {"delivery_status": "fail", "delays": ["1h"]}}, "must be a list of non-empty"),
        ({"retries": {"ended_reasons": ["voicemail"], "delays": ["10s"]}}, "delays[0]: '10s'"),
        ({"retries": {"ended_reasons": ["x"], "delays": "1h"}}, "delays: must be a list"),
        ({"retries": {"delays": ["1h"]}}, "neither delivery_status nor ended_reasons"),
        ({"retries": {"ended_reasons": ["x"], "delays": ["1h"] * 11}}, "at most 10 retries"),
        ({"outcomes": {}}, "names neither an actor nor a url"),
        ({"outcomes": {"url": "ftp://x"}}, "is not an http:// or https:// URL"),
        ({"outcomes": {"queue": "q"}}, "queue: given without an actor"),
        ({"outcomes": {"actor": "has space"}}, "is not a dramatiq actor name"),
        ({"outcomes": {"actor": "a", "secret": "s"}}, "unknown key(s) secret"),
    ],
)
def test_mistakes_are_named_with_their_path(table: dict[str, object], problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy({**NO_CAPS_TABLE, "default": table})
    assert any(problem in p for p in caught.value.problems), caught.value.problems


DAY = 86400


def test_three_retries_a_day_under_one_call_a_day_are_refused() -> None:
    rule = RetryRule(frozenset({"fail"}), frozenset(), (1800, 3600, 7200))
    problems = caps_conflicts(rule, (Caps((Limit(1, DAY),)),), "default.retries")
    assert len(problems) == 3
    assert problems[0].startswith("default.retries.delays[0]: retry 1 is due 30m after")
    assert "1 per 1d" in problems[0] and "not before 1d" in problems[0]


def test_a_gap_shorter_than_min_gap_is_refused_and_a_longer_one_passes() -> None:
    caps = Caps((Limit(3, 7 * DAY),), min_gap=4 * 3600)
    short = RetryRule(frozenset({"fail"}), frozenset(), (3600,))
    assert caps_conflicts(short, (caps,), "p")
    fine = RetryRule(frozenset({"fail"}), frozenset(), (4 * 3600, DAY))
    assert caps_conflicts(fine, (caps,), "p") == []
    # The third retry would be the fourth call in 7 days.
    over = RetryRule(frozenset({"fail"}), frozenset(), (4 * 3600, DAY, DAY))
    assert [p.split(":")[0] for p in caps_conflicts(over, (caps,), "p")] == ["p.delays[2]"]


def test_the_default_caps_refuse_retries_within_the_day() -> None:
    # The overall caps default to 1 a day and 4 h apart: retries need caps of their own.
    with pytest.raises(PolicyError) as caught:
        parse_policy({"default": {"retries": {"delivery_status": ["fail"], "delays": ["2h"]}}})
    assert caught.value.problems[0].startswith("default.retries.delays[0]: retry 1 is due 2h")


def test_a_template_whose_own_caps_refuse_the_default_retries_is_reported() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(
            {
                **NO_CAPS_TABLE,
                "default": {"retries": {"delivery_status": ["fail"], "delays": ["1h"]}},
                "templates": {TEMPLATE: {"caps": {"limits": [{"calls": 1, "period": "1d"}]}}},
            }
        )
    assert caught.value.problems[0].startswith(f"templates.{TEMPLATE} (default.retries).delays[0]")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_policy_check_reports_the_conflict_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f"""
        [caps]
        limits = [{{ calls = 1, period = "1d" }}]
        min_gap = "0"

        [templates."{TEMPLATE}".retries]
        delivery_status = ["fail"]
        ended_reasons = ["customer-did-not-answer", "voicemail"]
        delays = ["30m", "1h", "2h"]
        """,
    )
    assert check(str(path)) == 1
    out = capsys.readouterr().out
    # A UUID is a bare TOML key: the path names it unquoted.
    assert f"templates.{TEMPLATE}.retries.delays[0]: retry 1 is due 30m" in out
    assert out.count("never allow a call then") == 3


def test_policy_check_summarises_retries_and_routes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f"""
        [caps]
        limits = [{{ calls = 4, period = "1d" }}]
        min_gap = "30m"

        [templates."{TEMPLATE}".retries]
        delivery_status = ["fail"]
        delays = ["30m", "1h", "2h"]

        [templates."{TEMPLATE}".outcomes]
        url = "https://crm.example/hooks/levers"
        """,
    )
    assert check(str(path)) == 0
    out = capsys.readouterr().out
    assert "retry deliveryStatus fail after 30m, 1h, 2h" in out
    assert "outcomes to POST https://crm.example/hooks/levers" in out
    assert load_policy(path).rule_for(TEMPLATE).retries.enabled
