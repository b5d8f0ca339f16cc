"""Every console script's --help: each option with its meaning and default, the exit codes,
the variables that matter; the sandbox says on start where it is and what it accepts."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.commands import clean_env, run, script
from worker.settings import declared

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ("levers-worker",),
    ("levers-admin",),
    ("levers-admin", "status"),
    ("levers-admin", "dead-letters"),
    ("levers-enqueue",),
    ("levers-sandbox",),
]


def options_of(text: str) -> dict[str, str]:
    """Each `--option` of the options section with the text that explains it."""
    section = text.split("options:", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    current = ""
    for line in section.splitlines():
        found = re.match(r"\s{2}(-\w, )?(--[\w-]+)", line)
        if found:
            current = found.group(2)
            entries[current] = line
        elif current:
            entries[current] += " " + line.strip()
    return entries


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_explains_every_option_with_its_default(command: tuple[str, ...]) -> None:
    result = run(command[0], [*command[1:], "--help"])
    assert result.returncode == 0, result.stderr
    assert "exit status:" in result.stdout
    assert "environment" in result.stdout
    for option, text in options_of(result.stdout).items():
        if option == "--help":
            continue
        meaning = text.split(option, 1)[1]
        assert len(meaning.split()) >= 3, f"{option} is not explained: {text!r}"
        # Flags and pure choices say what happens without them; valued options name a default.
        assert (
            "default" in text
            or "(repeat" in text
            or option
            in (
                "--json",
                "--dry-run",
                "--resume",
                "--force",
                "--no-progress",
                "--number-column",
                "--metadata-columns",
                "--prompt-tag-columns",
            )
        ), f"{option} shows no default: {text!r}"


def test_worker_help_lists_every_variable_with_its_default() -> None:
    text = run("levers-worker", ["--help"]).stdout
    for f in declared():
        assert f.metadata["env"] in text, f.metadata["env"]
    assert "--processes N     worker processes (default: the CPU count" in text
    assert "aggregator threads per process (default: 8)" in text


def test_enqueue_help_names_its_variables_and_exit_codes() -> None:
    text = run("levers-enqueue", ["--help"]).stdout
    for variable in ("REDIS_URL", "LEVERS_NAMESPACE", "LEVERS_DEFAULT_REGION"):
        assert variable in text
    for code in ("0", "1", "2", "3"):
        assert re.search(rf"^  {code}\s", text, re.MULTILINE), code
    assert "LEVERS_BASE_URL" not in text  # it never talks to Levers


def test_sandbox_help_shows_real_defaults() -> None:
    text = " ".join(run("levers-sandbox", ["--help"]).stdout.split())
    assert "(default: 0, no limit)" in text
    assert "(default: sandbox-client)" in text and "(default: 8080)" in text


def test_demo_help_says_what_it_does_and_runs_nothing() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(ROOT / "scripts" / "demo"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=clean_env(REDIS_URL="redis://127.0.0.1:1/0"),
    )
    assert result.returncode == 0
    assert "levers-sandbox" in result.stdout and "levers-enqueue" in result.stdout
    assert time.monotonic() - started < 5, "the demo ran instead of explaining itself"


def test_sandbox_prints_where_it_is_and_what_it_accepts() -> None:
    process = subprocess.Popen(
        [script("levers-sandbox"), "--port", "0", "--client-secret", "s3"],
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(6)]
        exports = dict(re.findall(r"^  export (LEVERS_\w+)=(\S+)$", "".join(banner), re.MULTILINE))
        assert set(exports) == {"LEVERS_BASE_URL", "LEVERS_CLIENT_ID", "LEVERS_CLIENT_SECRET"}
        assert exports["LEVERS_CLIENT_SECRET"] == "s3"
        token = httpx.post(
            exports["LEVERS_BASE_URL"] + "/auth/v1/api-key/auth",
            json={
                "clientId": exports["LEVERS_CLIENT_ID"],
                "clientSecret": exports["LEVERS_CLIENT_SECRET"],
            },
            timeout=5,
        )
        assert token.status_code == 200 and "access_token" in token.json()
        assert "/_sandbox/stats" in "".join(banner)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0
