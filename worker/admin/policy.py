"""`levers-admin policy check|explain`: the calling policy, offline (see worker/policy/cli.py).

Neither touches Redis: `check` reads a file, `explain` the policy in force.
"""

from __future__ import annotations

import argparse
from typing import Any

from worker.policy import cli


def add_parser(subparsers: Any) -> None:
    parser = cli.add_parser(subparsers)
    parser.set_defaults(run=handler, offline=True)


def handler(_settings: Any, _client: Any, args: argparse.Namespace) -> int:
    return cli.handle(args)
