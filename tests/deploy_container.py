"""Reads deploy/Dockerfile, .dockerignore and deploy/compose.yaml for the tests.

A helper for tests/test_deploy_image.py and tests/test_deploy_compose.py, not a test module.
The Dockerfile is read by a small parser (instructions, continuations, stages); compose.yaml with
PyYAML (anchors and merge keys included) and compose's own variable interpolation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"


# -- the Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    value: str  # the rest of the instruction, continuation lines joined
    stage: int  # 0 for instructions before the first FROM (global ARGs), then 1, 2, …


def dockerfile_instructions(text: str | None = None) -> list[Instruction]:
    """The instructions of a Dockerfile, with comments dropped and `\\` continuations joined."""
    lines = (DOCKERFILE.read_text(encoding="utf-8") if text is None else text).splitlines()
    instructions: list[Instruction] = []
    stage = 0
    current: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        keyword, _, value = " ".join(part for part in current if part).partition(" ")
        current = []
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, value.strip(), stage))
    return instructions


def build_args(instructions: list[Instruction]) -> dict[str, str]:
    """Default values of the ARGs declared before the first FROM."""
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ARG" and ins.stage == 0 and "=" in ins.value:
            name, _, default = ins.value.partition("=")
            args[name.strip()] = default.strip().strip('"')
    return args


def base_images(text: str | None = None) -> list[str]:
    """The image each FROM starts from, ARG defaults substituted; stage names left out."""
    instructions = dockerfile_instructions(text)
    args = build_args(instructions)
    names: set[str] = set()
    images: list[str] = []
    for ins in instructions:
        if ins.keyword != "FROM":
            continue
        parts = [p for p in ins.value.split() if not p.startswith("--")]
        image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), parts[0])
        if image not in names:
            images.append(image)
        if len(parts) >= 3 and parts[1].upper() == "AS":
            names.add(parts[2])
    return images


def final_stage(text: str | None = None) -> list[Instruction]:
    instructions = dockerfile_instructions(text)
    last = max(ins.stage for ins in instructions)
    return [ins for ins in instructions if ins.stage == last]


def exec_form(value: str) -> list[str] | None:
    """The JSON array of an exec-form instruction, or None for the shell form."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
        return parsed
    return None


def healthcheck_command(text: str | None = None) -> list[str]:
    """The exec-form CMD of the final stage's HEALTHCHECK."""
    [check] = [ins for ins in final_stage(text) if ins.keyword == "HEALTHCHECK"]
    _, _, command = check.value.partition(" CMD ")
    parsed = exec_form(command.strip())
    if parsed is None:
        raise ValueError(f"HEALTHCHECK is not in exec form: {check.value!r}")
    return parsed


# -- compose ------------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return compose


_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME:?error}` and `$$`, resolved from `env`;
    a required variable that `env` lacks raises KeyError with compose's message."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        found = env.get(name)
        if op in (":-", "-") and not found:
            return arg or ""
        if op in (":?", "?") and not found:
            raise KeyError(f"{name}: {arg}")
        return found or ""

    return _INTERPOLATION.sub(one, value)


def interpolated_names(node: Any) -> set[str]:
    """Every variable a compose file interpolates anywhere."""
    if isinstance(node, dict):
        return set().union(*(interpolated_names(v) for v in node.values()), set())
    if isinstance(node, list):
        return set().union(*(interpolated_names(v) for v in node), set())
    if isinstance(node, str):
        return {m["name"] for m in _INTERPOLATION.finditer(node) if m["name"]}
    return set()


def required_names(node: Any) -> set[str]:
    """The variables a compose file interpolates without a default (`${X}` or `${X:?…}`)."""
    if isinstance(node, dict):
        return set().union(*(required_names(v) for v in node.values()), set())
    if isinstance(node, list):
        return set().union(*(required_names(v) for v in node), set())
    if isinstance(node, str):
        return {
            m["name"]
            for m in _INTERPOLATION.finditer(node)
            if m["name"] and m["op"] not in (":-", "-")
        }
    return set()


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (compose's .env, kustomize's envs files); comments and blanks skipped."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not KEY=VALUE: {line!r}")
        values[name.strip()] = value.strip()
    return values


def uses_our_image(service: Mapping[str, Any]) -> bool:
    return "LEVERS_IMAGE" in str(service.get("image", ""))


def duration_seconds(text: str) -> float:
    """A compose duration (`180s`, `1m30s`, `2m`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * units[unit] for number, unit in parts)
