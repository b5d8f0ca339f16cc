"""`levers-admin contacts show`, `batches show`, `outcomes unmatched` and `callbacks ...`:
what happened on the calls (see worker/outcomes_cli.py)."""

from __future__ import annotations

import argparse
from typing import Any

from worker import outcomes_cli


def add_parser(subparsers: Any) -> None:
    outcomes_cli.add_parser(subparsers)
    for name in outcomes_cli.COMMANDS:
        subparsers.choices[name].set_defaults(run=handler)


def handler(_settings: Any, _client: Any, args: argparse.Namespace) -> int:
    return outcomes_cli.handle(args)
