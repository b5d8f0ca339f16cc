"""`levers-admin console-password NAME`: a LEVERS_CONSOLE_USERS entry for a console user.

Reads the password at a prompt (twice, not echoed), or one line from standard input when it
is not a terminal, and prints `NAME:scrypt:...`: the hash, never the password. Add the line to
LEVERS_CONSOLE_USERS (entries separated by commas) or to the file LEVERS_CONSOLE_USERS_FILE
names. Touches neither Redis nor the settings.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from worker.admin.common import PROG, admin_epilog
from worker.commands import HelpFormatter
from worker.passwords import NAME, hash_password

MIN_PASSWORD = 12


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "console-password",
        help="hash a console user's password for LEVERS_CONSOLE_USERS",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=admin_epilog(((0, "printed"), (2, "bad name, or a password refused"))),
    )
    parser.add_argument("name", help="the user's name: letters, digits and _.@- (up to 64)")
    parser.set_defaults(run=handler, offline=True)


def handler(_settings: Any, _client: Any, args: argparse.Namespace) -> int:
    if not NAME.fullmatch(args.name):
        return _refuse("the name is 1-64 letters, digits or _.@-")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            return _refuse("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        return _refuse(f"a console password has at least {MIN_PASSWORD} characters")
    print(f"{args.name}:{hash_password(password)}")
    return 0


def _refuse(message: str) -> int:
    print(f"{PROG} console-password: {message}", file=sys.stderr)
    return 2
