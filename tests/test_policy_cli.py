"""`levers-admin policy check|explain` run as real commands: output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from worker.admin import main as admin_main

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
GOOD = f"""
[default]
window = "by_country"

[templates."{TEMPLATE}"]
days = ["sun-thu"]
hours = ["09:00-12:00", "22:00-02:00"]

[caps]
min_gap = "2h"
"""


def admin(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEVERS_")}
    return subprocess.run(
        [sys.executable, "-m", "worker.cli_admin", "policy", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.toml"
    path.write_text(GOOD, encoding="utf-8")
    return path


def test_check_a_valid_file(good_file: Path) -> None:
    result = admin("check", str(good_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{good_file}: valid"
    assert "  default: by_country" in lines
    assert f"  template {TEMPLATE}: custom: Sun-Thu 09:00-12:00, 22:00-02:00; Fri, Sat closed" in (
        lines
    )
    assert (
        "  caps (every template together): 1 per 1d, 3 per 7d, 10 per 30d, at least 2h apart"
        in (lines)
    )


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[default]\nwindow = "mars"\n[templates.x]\nhours = ["9-5"]\n[caps]\nmin_gap = "soon"\n',
        encoding="utf-8",
    )
    result = admin("check", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: 5 problem(s)"
    for start in (
        "  default.window: 'mars'",
        "  templates.x: not an aiSettingsTemplateId",
        "  templates.x.days: missing",
        "  templates.x.hours[0]: '9-5' is not a time range",
        "  caps.min_gap: 'soon' is not a duration",
    ):
        assert any(line.startswith(start) for line in lines), (start, lines)


def test_check_of_a_missing_file_exits_1_and_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = admin("check", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1
    assert "cannot read the file (No such file or directory)" in missing.stdout
    assert admin("check").returncode == 2


def test_explain_a_saudi_number_in_ramadan() -> None:
    result = admin("explain", "+966501234567", "--at", "2026-02-25T10:00")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "number:       +96650*****67 (region SA)" in out
    assert "time zones:   Asia/Riyadh (from the number)" in out
    assert "window:       by_country -> SA: Sun-Thu 09:00-21:00" in out
    assert (
        "today:        Wed 2026-02-25: 12:00-21:00 (Ramadan hours, Umm al-Qura calendar) "
        "in Asia/Riyadh"
    ) in out
    assert "decision:     held (window_closed) until Wed 2026-02-25 12:00 +03 (Asia/Riyadh)" in out
    assert "next opening: Wed 2026-02-25 12:00 +03 (Asia/Riyadh) = 2026-02-25 09:00 UTC" in out


def test_explain_a_number_with_two_zones_in_each_local_time() -> None:
    result = admin("explain", "+12085551234", "--at", "2026-06-10T15:30:00Z")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "time zones:   America/Boise, America/Los_Angeles (from the number)" in out
    assert "never outside every day 08:00-21:00 (US rule)" in out
    assert (
        "decision:     held (window_closed) until Wed 2026-06-10 10:00 MDT (America/Boise) = "
        "Wed 2026-06-10 09:00 PDT (America/Los_Angeles) = 2026-06-10 16:00 UTC"
    ) in out


def test_explain_with_a_policy_file_a_template_and_json(good_file: Path) -> None:
    result = admin(
        "explain",
        "+966501234567",
        "--template",
        TEMPLATE.upper(),
        "--at",
        "2026-04-09T23:30+03:00",
        "--json",
        env={"LEVERS_POLICY_FILE": str(good_file)},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["template"] == TEMPLATE
    assert report["rule"] == f"[templates.{TEMPLATE}] in {good_file}"
    # Thursday's 22:00-02:00 runs into Friday; the next opening is Sunday 09:00.
    assert report["decision"] == {
        "allowed": True,
        "reason": None,
        "until": "2026-04-09T23:00:00Z",
        "expire_at": None,
    }
    assert report["next_opening"] == "2026-04-12T06:00:00Z"


def test_explain_a_producer_zone_and_an_expiry() -> None:
    result = admin(
        "explain",
        "+966501234567",
        "--time-zone",
        "Europe/London",
        "--at",
        "2026-04-10T12:00",  # Friday, in London: the Saudi weekend
        "--expire-at",
        "2026-04-11T12:00",
    )
    assert result.returncode == 0, result.stderr
    assert "time zones:   Europe/London (given with the contact)" in result.stdout
    assert (
        "decision:     expired (expire_at Sat 2026-04-11 12:00 BST (Europe/London)" in result.stdout
    )
    assert "held by window_closed past it" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["+9665012"], "is not a valid number"),
        (["+966501234567", "--at", "yesterday"], "is not ISO 8601"),
        (["+12085551234", "--at", "2026-06-10T09:00"], "has no offset, and the number has 2"),
        (["+966501234567", "--time-zone", "Asia/Ryadh"], "is not an IANA time zone"),
        (["+966501234567", "--template", "abc"], "--template 'abc' is not a UUID"),
    ],
)
def test_explain_usage_errors_exit_2(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In process (the commands above already run as subprocesses): same parser, same exits.
    for name in ("LEVERS_POLICY_FILE", "LEVERS_DEFAULT_WINDOW", "LEVERS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    assert admin_main(["policy", "explain", *args]) == 2
    assert message in capsys.readouterr().err
