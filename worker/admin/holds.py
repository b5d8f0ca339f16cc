"""`levers-admin holds list|release|expire`: look at held contacts and act on them.

    levers-admin holds list [--reason R] [--batch-key K] [--limit N] [--json]
    levers-admin holds release (--id CONTACT_ID ... | --reason R | --batch-key K | --all)
                               [--time-zone ZONE] --note TEXT
    levers-admin holds expire  (--id CONTACT_ID ... | --reason R | --batch-key K | --all)
                               --note TEXT

Numbers are masked unless --json. `release` makes the contacts due now: with --time-zone their
window is checked again in that zone when they are sent; without it the operator takes the
timing on themselves (window and not_before; expire_at, caps and the do-not-call list still
apply).
`expire` moves them to the dead letters as `expired`, with the note.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

import redis

from worker.admin.common import EXIT_CODES, admin_epilog
from worker.admin.status import utc
from worker.audit import operator
from worker.commands import HelpFormatter
from worker.contacts import mask_number, time_zone_problem
from worker.holds import HELD_REASONS, Holds
from worker.keys import Keys
from worker.operations import Operations
from worker.runtime import buffer_config
from worker.settings import Settings

ACTIONS = ("list", "release", "expire")


def add_parser(subparsers: Any) -> None:
    holds: argparse.ArgumentParser = subparsers.add_parser(
        "holds",
        help="list, release or expire held contacts",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=admin_epilog(EXIT_CODES),
    )
    holds.add_argument("action", choices=ACTIONS)
    holds.add_argument("--reason", choices=HELD_REASONS, help="only contacts held for this")
    holds.add_argument("--batch-key", help="only this batch key (template:updateExisting)")
    holds.add_argument("--id", action="append", help="only this contact id (repeatable)")
    holds.add_argument("--all", action="store_true", help="release or expire every hold")
    holds.add_argument("--time-zone", help="release: call them in this IANA zone's window")
    holds.add_argument("--note", default="", help="why (kept with the action; required)")
    holds.add_argument("--limit", type=int, default=100, help="list at most this many (100)")
    holds.add_argument("--json", action="store_true", help="whole entries, numbers unmasked")
    holds.set_defaults(run=handler)


def handler(settings: Settings, client: redis.Redis, args: argparse.Namespace) -> int:
    keys = Keys(settings.namespace)
    holds = Holds(client, keys, buffer_config(settings))
    ids = frozenset(args.id or ())
    if args.action == "list":
        entries = list(
            holds.entries(
                batch_key=args.batch_key, reason=args.reason, contact_ids=ids, limit=args.limit
            )
        )
        if args.json:
            for held in entries:
                print(json.dumps(asdict(held), sort_keys=True, default=str))
        else:
            _print(entries)
        return 0
    if not (ids or args.reason or args.batch_key or args.all):
        return _usage(f"{args.action} needs --id, --reason, --batch-key or --all")
    if not args.note.strip():
        return _usage(f"{args.action} needs --note: say why, it is kept with the action")
    if args.time_zone and (problem := time_zone_problem(args.time_zone)):
        return _usage(problem)
    if args.time_zone and args.action != "release":
        return _usage("--time-zone goes with release only")
    chosen = list(holds.entries(batch_key=args.batch_key, reason=args.reason, contact_ids=ids))
    if ids and len(chosen) < len(ids):
        missing = sorted(ids - {h.contact_id for h in chosen})
        print(f"levers-admin: not held: {', '.join(missing)}", file=sys.stderr)
        return 1
    target = ",".join(sorted(ids)) if ids else (args.batch_key or args.reason or "all holds")
    done = Operations(client, keys).act_on_holds(
        operator(),
        holds,
        chosen,
        args.action,
        note=args.note,
        target=target,
        time_zone=args.time_zone,
    )
    verb = "released" if args.action == "release" else "expired"
    print(f"{verb} {done} held contacts")
    return 0 if done == len(chosen) else 1


def _print(entries: list[Any]) -> None:
    if not entries:
        print("no held contacts")
        return
    print(f"{'contact id':<40} {'number':<16} {'reason':<22} {'release (UTC)':<21} batch key")
    for held in entries:
        release = utc(held.release_at) or "none known"
        number = mask_number(held.number)
        print(
            f"{held.contact_id:<40} {number:<16} {held.reason:<22} {release:<21} {held.batch_key}"
        )
    print(f"{len(entries)} held contacts shown")


def _usage(message: str) -> int:
    print(f"levers-admin holds: {message}", file=sys.stderr)
    return 2
