"""`levers-admin dead-letters list|replay|purge`: contacts that wait for an operator.

A filter that cannot match (an unknown reason, an id that is not held, a batch key no dead
letter has) is refused with exit status 1 and a message naming what exists, instead of
quietly doing nothing: "replayed 0" after a typo reads like success.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

import redis

from worker.admin.common import PROG, admin_epilog
from worker.audit import operator
from worker.commands import HelpFormatter, paragraphs
from worker.contacts import mask_number
from worker.deadletters import REASONS as DEAD_LETTER_REASONS
from worker.deadletters import DeadLetters
from worker.keys import Keys
from worker.operations import Operations
from worker.settings import Settings

# How many existing ids a refusal names at most.
SHOWN_IDS = 5


class Refused(Exception):
    """A filter that matches nothing; the message says what exists instead."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dead-letters",
        help="list, replay or purge dead letters",
        description=paragraphs(
            "Dead letters are contacts that will not be sent without an operator "
            "(reasons: " + ", ".join(DEAD_LETTER_REASONS) + "; see docs/guarantees.md). `list` "
            "shows them (numbers masked, each with its contact id); `replay` enqueues their "
            "contacts again and deletes the records that were enqueued; `purge` deletes them. "
            "replay and purge need a filter or --all. Filters combine (all must match)."
        ),
        formatter_class=HelpFormatter,
        epilog=admin_epilog(),
    )
    parser.add_argument("action", choices=["list", "replay", "purge"], help="what to do")
    parser.add_argument(
        "--reason",
        metavar="REASON",
        help="only dead letters with this reason: "
        + ", ".join(DEAD_LETTER_REASONS)
        + " (default: any)",
    )
    parser.add_argument(
        "--batch-key",
        metavar="KEY",
        help="only this batch key, TEMPLATE:UPDATE_EXISTING as `list` shows it (e.g. default:0)",
    )
    parser.add_argument(
        "--id",
        action="append",
        metavar="ID",
        help="only this dead-letter id (repeat for several; default: any)",
    )
    parser.add_argument(
        "--all", action="store_true", help="replay or purge every dead letter (default: off)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        metavar="N",
        help="list at most N, oldest first (default: 0 = all)",
    )
    parser.add_argument(
        "--note",
        default="",
        help="why: kept with the replay or purge in the operators' audit (default: none)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="list whole records, one JSON object a line, numbers unmasked (for reconciliation)",
    )
    parser.set_defaults(run=handler)


def handler(settings: Settings, client: redis.Redis, args: argparse.Namespace) -> int:
    dead = DeadLetters(client, Keys(settings.namespace))
    if args.action != "list" and not (args.reason or args.id or args.batch_key or args.all):
        print(f"{PROG}: {args.action} needs --reason, --batch-key, --id or --all", file=sys.stderr)
        return 2
    try:
        records = select(dead, args.reason, args.batch_key, args.id or [])
    except Refused as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if args.action == "list":
        return list_records(records[: args.limit] if args.limit > 0 else records, args.json)
    operations = Operations(client, Keys(settings.namespace))
    target = _target(args)
    if args.action == "purge":
        ids = [r["id"] for r in records]
        removed = operations.purge_dead_letters(operator(), ids, note=args.note, target=target)
        print(f"purged {removed} dead letters")
        return 0
    return replay(settings, operations, records, args.note, target)


def _target(args: argparse.Namespace) -> str:
    """What an action chose, for the audit line."""
    chosen = [
        f"{name}={value}"
        for name, value in (("reason", args.reason), ("batch_key", args.batch_key))
        if value
    ]
    if args.id:
        chosen.append("id=" + ",".join(args.id))
    return " ".join(chosen) or "all"


def select(
    dead: DeadLetters, reason: str | None, batch_key: str | None, ids: list[str]
) -> list[dict[str, Any]]:
    """The records every given filter matches; Refused when a filter cannot match."""
    if reason is not None and reason not in DEAD_LETTER_REASONS:
        held = Counter(r["reason"] for r in dead.select())
        raise Refused(
            f"unknown reason {reason!r}; reasons are {', '.join(DEAD_LETTER_REASONS)}"
            f" (held: {_counts(held)})"
        )
    if ids:
        found = {r["id"] for r in dead.get(ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            existing = dead.ids()
            shown = ", ".join(existing[-SHOWN_IDS:]) or "none"
            raise Refused(
                f"no dead letter with id {', '.join(missing)}; {len(existing)} held"
                f" (newest: {shown}; `{PROG} dead-letters list` shows them all)"
            )
    by_reason = list(dead.select(reason=reason, ids=ids))
    if batch_key is None:
        return by_reason
    records = [r for r in by_reason if r.get("batch_key") == batch_key]
    if not records:
        keys = Counter(r.get("batch_key") for r in by_reason)
        scope = f" with reason {reason}" if reason else ""
        raise Refused(
            f"no dead letter{scope} has batch key {batch_key!r}; batch keys held{scope}: "
            f"{_counts(keys)}"
        )
    return records


def _counts(counts: Counter[Any]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{name} ({count})" for name, count in sorted(counts.items()))


def list_records(records: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        # Whole records, numbers unmasked: for reconciliation with Levers' call logs.
        for record in records:
            print(json.dumps(record, sort_keys=True))
        return 0
    if not records:
        print("no dead letters")
        return 0
    print(
        f"{'id':<40} {'reason':<18} {'status':>6} {'number':<16} {'contact id':<40} "
        f"{'batch key':<40} detail"
    )
    for r in records:
        number = mask_number(r["contact"]["numberToCall"])
        detail = str(r.get("detail") or "").replace("\n", " ")[:60]
        status = r.get("status") or ""
        print(
            f"{r['id']:<40} {r['reason']:<18} {status!s:>6} {number:<16} "
            f"{r.get('contact_id') or '':<40} {r['batch_key']:<40} {detail}"
        )
    print(f"{len(records)} dead letters")
    return 0


def replay(
    settings: Settings,
    operations: Operations,
    records: list[dict[str, Any]],
    note: str,
    target: str,
) -> int:
    from producers.api import Producer

    producer = Producer(settings)
    try:
        result = operations.replay_dead_letters(
            operator(), records, producer.enqueue_contacts, note=note, target=target
        )
    finally:
        producer.close()
    print(f"replayed {len(result.replayed)} dead letters")
    for dl_id, reason in result.refused:
        print(f"  kept {dl_id}: {reason}")
    return 1 if result.refused else 0
