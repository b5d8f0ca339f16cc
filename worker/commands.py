"""What every console script shares: help text, argument types, and one-line start-up failures.

A command that cannot start says why in one line on stderr, after its own name, and exits 2;
never a traceback. The environment variables listed in `--help` are generated from the
settings' own declarations (`worker.settings.env`), so they cannot drift from what is read.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from worker.connection import connect, describe
from worker.settings import Settings, declared

# The settings every command that talks to Redis reads.
REDIS_VARIABLES = (
    "redis_url",
    "redis_sentinels",
    "redis_sentinel_master",
    "redis_password",
    "redis_sentinel_password",
    "namespace",
)
WIDTH = 100
_VARIABLE_COLUMN = 34
_CODE_COLUMN = 6


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (a count of processes or threads)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def environment_help(names: Iterable[str] | None = None) -> str:
    """The `environment:` block of an epilog: each variable, its meaning and its default.

    `names` are Settings attribute names, in the order to show them; None means every setting.
    """
    wanted = list(names) if names is not None else None
    by_name = {f.name: f for f in declared()}
    chosen = [by_name[n] for n in wanted] if wanted is not None else list(by_name.values())
    lines = ["environment:"]
    for f in chosen:
        meta = f.metadata
        text = f"{meta['doc']}; default: {_default_text(f.default)}"
        if meta["secret"]:
            text += f" (or a file named by {meta['env']}_FILE)"
        lines.extend(_entry(meta["env"], text, _VARIABLE_COLUMN))
    return "\n".join(lines)


def _entry(name: str, text: str, column: int) -> list[str]:
    indent = " " * column
    first = f"  {name}"
    wrapped = textwrap.wrap(text, WIDTH - column)
    if len(first) + 1 >= column:
        return [first, *(indent + line for line in wrapped)]
    return [first.ljust(column) + wrapped[0], *(indent + line for line in wrapped[1:])]


def exit_codes_help(codes: Sequence[tuple[int, str]]) -> str:
    lines = ["exit status:"]
    for code, meaning in codes:
        lines.extend(_entry(str(code), meaning, _CODE_COLUMN))
    return "\n".join(lines)


def paragraphs(*texts: str) -> str:
    """A description for HelpFormatter (which keeps line breaks): each text filled to WIDTH."""
    return "\n\n".join(textwrap.fill(text, WIDTH) for text in texts)


def epilog(*blocks: str) -> str:
    return "\n\n".join(block for block in blocks if block)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's own layout (tables of variables and exit codes) and a wide page."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=_VARIABLE_COLUMN, width=WIDTH)


def fail(prog: str, message: str, code: int = 2) -> SystemExit:
    """Print `prog: message` on stderr; raise the result to exit with `code`."""
    print(f"{prog}: {message}", file=sys.stderr)
    return SystemExit(code)


def redis_problem(exc: redis.RedisError) -> str:
    """A Redis error in a few words, without redis-py's traceback."""
    text = str(exc).strip() or type(exc).__name__
    return text.rstrip(".")


def redis_or_exit(settings: Settings, prog: str) -> redis.Redis:
    """A client that has answered PING, or one line naming where Redis was looked for, exit 2."""
    client = connect(settings)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise fail(
            prog,
            f"cannot reach Redis at {describe(settings)} ({redis_problem(exc)}); "
            "check REDIS_URL (or REDIS_SENTINELS) and that Redis is running",
        ) from None
    return client
