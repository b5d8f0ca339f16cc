"""`levers-admin`: inspect levers-batcher's state in Redis and act on it.

Each subcommand group is a module of this package with

    add_parser(subparsers) -> None      # registers its parser(s); each sets `run=handler`
    handler(settings, client, args) -> int   # returns the exit status

and is listed once in `GROUPS`; `main` does the rest: settings, a Redis client that answered,
and one line instead of a traceback when either is missing.
"""

from __future__ import annotations

import argparse
from types import ModuleType

import redis

from worker.admin import (
    console,
    control,
    dead_letters,
    holds,
    outcomes,
    policy,
    status,
    suppress,
)
from worker.admin.common import PROG, admin_epilog
from worker.commands import HelpFormatter, fail, paragraphs, redis_or_exit, redis_problem
from worker.connection import describe
from worker.settings import settings_or_exit

GROUPS: tuple[ModuleType, ...] = (
    status,
    dead_letters,
    holds,
    suppress,
    control,
    outcomes,
    policy,
    console,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=paragraphs(
            "Inspect and act on levers-batcher's state: the namespace LEVERS_NAMESPACE "
            "on the Redis at REDIS_URL. `levers-admin COMMAND --help` shows each command's options."
        ),
        formatter_class=HelpFormatter,
        epilog=admin_epilog(),
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "offline", False):  # needs neither the settings' Redis nor Redis
        code: int = args.run(None, None, args)
        return code
    settings = settings_or_exit(prog=PROG)
    client = redis_or_exit(settings, PROG)
    try:
        code = args.run(settings, client, args)
        return code
    except redis.RedisError as exc:
        raise fail(
            PROG, f"Redis at {describe(settings)} failed during the command ({redis_problem(exc)})"
        ) from None
    finally:
        client.close()
