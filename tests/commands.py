"""Run the console scripts as a user does: the installed entry points, in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    """The path of an installed console script (`levers-admin`, ...) of this environment."""
    path = BIN / name
    if not path.exists():
        raise AssertionError(f"{name} is not installed in {BIN}: pip install -e '.[test]'")
    return str(path)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any LEVERS_/PROMETHEUS_/REDIS_ variable, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LEVERS_", "PROMETHEUS_", "REDIS_"))
    }
    env.update(extra)
    return env


def run(
    name: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 60,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script(name), *args],
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        check=False,
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
