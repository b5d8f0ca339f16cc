"""The calling policy file: what it means, and every mistake in it reported at once."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from worker.errors import PolicyError, SettingsError
from worker.policy import DEFAULT_CAPS, Caps, Limit, default_policy, load_policy, parse_policy
from worker.policy.presets import BY_COUNTRY, PRESETS
from worker.policy.windows import ALWAYS, Window
from worker.settings import Settings

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_policy_file_with_every_kind_of_rule(tmp_path: Path) -> None:
    policy = load_policy(
        write(
            tmp_path,
            f"""
            [default]
            window = "by_country"
            caps = {{ limits = [{{ calls = 5, period = "30d" }}] }}

            [templates.default]
            window = "always"

            [templates."{TEMPLATE.upper()}"]
            days = ["sun-thu"]
            hours = ["09:00-12:00", "22:00-02:00"]
            time_zone = "Asia/Riyadh"

            [templates."11111111-2222-3333-4444-555555555555"]
            window = "fr"

            [countries.fr]
            schedule = [{{ days = ["mon-fri"], hours = ["10:00-13:00", "14:00-20:00"] }}]

            [countries.CA]
            window = "US"

            [caps]
            min_gap = "2h"
            """,
        )
    )
    assert policy.default.window == BY_COUNTRY
    assert policy.default.caps == Caps((Limit(5, 30 * 86400),))
    assert policy.rule_for(None).window is ALWAYS
    custom = policy.rule_for(TEMPLATE)  # keys are matched in the contacts' lower case
    assert isinstance(custom.window, Window)
    assert custom.window.describe() == "Sun-Thu 09:00-12:00, 22:00-02:00; Fri, Sat closed"
    assert custom.time_zone == "Asia/Riyadh"
    # A template table inherits what it does not say from [default].
    assert custom.caps == policy.default.caps
    # A [countries] window can be named by a template like a preset.
    assert policy.rule_for("11111111-2222-3333-4444-555555555555").window is policy.countries["FR"]
    assert policy.countries["CA"] is PRESETS["US"]
    # A template not listed falls back to [default].
    assert policy.rule_for("99999999-2222-3333-4444-555555555555") is policy.default
    assert policy.caps == Caps(DEFAULT_CAPS.limits, 2 * 3600)
    assert policy.caps_for(TEMPLATE) == (policy.caps, policy.default.caps)


def test_an_empty_file_is_by_country_with_the_default_caps(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, ""))
    assert policy.default.window == BY_COUNTRY
    assert policy.caps == DEFAULT_CAPS
    assert policy.templates == {}


def test_every_problem_is_reported_at_once_with_its_toml_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        colour = "blue"
        retries = {{ max = 3 }}

        [default]
        window = "mars"

        [templates.abc]
        days = ["sun-thx"]
        hours = ["09:00-25:00", "10-11"]
        time_zone = "Asia/Ryadh"

        [templates."{TEMPLATE}"]
        window = "SA"
        hours = ["09:00-10:00"]

        [templates."{TEMPLATE.upper()}"]
        window = "AE"

        [countries.ZZ]
        window = "US"

        [countries.DE]
        window = "by_country"

        [caps]
        min_gap = "4 hours"
        limits = [{{ calls = 0, period = "1d" }}, {{ calls = true, period = "7x" }}]
        """,
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    problems = caught.value.problems
    expected = [
        "colour: unknown key",
        "retries: unknown key (expected one of: default, templates, countries, caps)",
        "default.window: 'mars' is not",
        "templates.abc: not an aiSettingsTemplateId",
        "templates.abc.days: 'sun-thx' is not a day",
        "templates.abc.hours[0]: '09:00-25:00' is not a time range",
        "templates.abc.hours[1]: '10-11' is not a time range",
        "templates.abc.time_zone: time_zone 'Asia/Ryadh' is not an IANA time zone",
        f"templates.{TEMPLATE}: give either window or a custom window",
        f"templates.{TEMPLATE.upper()}: the same template as another key",
        "countries.ZZ: not a region code",
        "countries.DE.window: 'by_country' is not always,",
        "caps.min_gap: '4 hours' is not a duration",
        "caps.limits[0].calls: 0 is not a whole number",
        "caps.limits[1].calls: True is not a whole number",
        "caps.limits[1].period: '7x' is not a duration",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected), problems
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[default]\ndays = []\nhours = ['09:00-10:00']", "default.days: must be a non-empty"),
        ("[default]\ndays = ['mon']", "default.hours: missing"),
        ("[default]\nschedule = [{days = ['mon']}]", "default.schedule[0].hours: missing"),
        ("[default]\nramadan = 'x'\ndays=['mon']\nhours=['09:00-10:00']", "default.ramadan:"),
        (
            "[default]\ndays=['mon']\nhours=['09:00-10:00']\npublic_holidays='XX'",
            "default.public_holidays: 'XX' is not a country code",
        ),
        ("[countries.FR]\ntime_zone = 'Europe/Paris'", "countries.FR: names no window"),
        ("[templates.default.caps]\nlimits = [{calls = 1, period = '400d'}]", "templates.default"),
        ("caps = 3", "caps: must be a table"),
        ("templates = 3", "templates: must be a table"),
        ("[templates.default]\nretries = {max = 3}", "templates.default.retries: unknown key"),
    ],
)
def test_single_mistakes(text: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(tomllib.loads(text))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy(tmp_path / "missing.toml")
    with pytest.raises(PolicyError, match=r"not valid TOML: .*line 1"):
        load_policy(write(tmp_path, "window = \n[default]\n"))


def test_default_policy_names_one_window_for_every_template() -> None:
    assert default_policy().default.window == BY_COUNTRY
    assert default_policy("sa").default.window is PRESETS["SA"]
    assert default_policy("always").default.window is ALWAYS
    assert default_policy().caps == DEFAULT_CAPS
    with pytest.raises(PolicyError):
        default_policy("mars")


def test_settings_name_the_policy() -> None:
    settings = Settings.from_env({"LEVERS_DEFAULT_WINDOW": "sa"})
    assert settings.default_window == "SA" and settings.policy_file is None
    assert Settings.from_env({}).default_window == "by_country"
    with pytest.raises(SettingsError, match="LEVERS_DEFAULT_WINDOW='mars': must be by_country"):
        Settings.from_env({"LEVERS_DEFAULT_WINDOW": "mars"})
    with pytest.raises(SettingsError, match="set one, not both"):
        Settings.from_env({"LEVERS_DEFAULT_WINDOW": "SA", "LEVERS_POLICY_FILE": "/etc/p.toml"})


def test_the_example_in_the_docs_is_a_valid_policy(tmp_path: Path) -> None:
    doc = (Path(__file__).parent.parent / "docs" / "calling-hours.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    policy = load_policy(write(tmp_path, example))
    assert policy.rule_for(None).window is PRESETS["SA"]
    campaign = policy.rule_for(TEMPLATE)
    assert isinstance(campaign.window, Window)
    assert campaign.window.describe() == (
        "Sun-Thu 09:00-12:00, 16:00-21:00; Fri, Sat closed; during Ramadan (Umm al-Qura): "
        "Sun-Thu 13:00-17:00; Fri, Sat closed; closed on SA public holidays"
    )
    assert campaign.time_zone == "Asia/Riyadh"
    assert policy.countries["CA"] is PRESETS["US"]
    assert policy.caps == DEFAULT_CAPS
