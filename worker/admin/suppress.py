"""`levers-admin suppress add|remove|list|import|export`: the do-not-call list.

    levers-admin suppress add NUMBER... [--expire-at TIME] --note TEXT
    levers-admin suppress remove NUMBER... --note TEXT
    levers-admin suppress list [--match DIGITS] [--limit N] [--json]
    levers-admin suppress import FILE [--region CC] [--expire-at TIME] --note TEXT
    levers-admin suppress export [FILE]

Numbers are normalised to E.164 with phonenumbers (national ones with --region or
LEVERS_DEFAULT_REGION). A suppressed number is refused when a contact is accepted, and taken
out of any batch that still holds it when that batch is sent. `list` masks numbers unless
--json; `export` writes them whole (one JSON object a line), for a backup or another system.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import redis

from worker.admin.common import EXIT_CODES, admin_epilog
from worker.admin.status import utc
from worker.audit import Audit, operator
from worker.commands import HelpFormatter
from worker.contacts import instant, mask_number, normalise_number
from worker.errors import ContactError
from worker.keys import Keys
from worker.operations import Operations
from worker.settings import Settings
from worker.suppression import Suppression, entry_json

ACTIONS = ("add", "remove", "list", "import", "export")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "suppress",
        help="the do-not-call list: add, remove, list, import, export",
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog=admin_epilog(EXIT_CODES),
    )
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("values", nargs="*", metavar="NUMBER|FILE", help="numbers, or a file")
    parser.add_argument("--region", help="region for numbers in national form (e.g. SA)")
    parser.add_argument(
        "--expire-at", help="the suppression ends then (ISO 8601 with an offset, or epoch s)"
    )
    parser.add_argument("--note", default="", help="why (kept with each entry and the action)")
    parser.add_argument("--match", help="list: only numbers containing these digits")
    parser.add_argument("--limit", type=int, default=100, help="list at most this many (100)")
    parser.add_argument("--json", action="store_true", help="list whole entries, unmasked")
    parser.set_defaults(run=handler)


def handler(settings: Settings, client: redis.Redis, args: argparse.Namespace) -> int:
    keys = Keys(settings.namespace)
    suppression = Suppression(client, keys)
    region = (args.region or settings.default_region or "").upper() or None
    if args.action == "list":
        shown = 0
        for entry in suppression.entries(args.match):
            if shown >= args.limit:
                break
            shown += 1
            if args.json:
                print(entry_json(entry))
            else:
                until = utc(entry.expire_at) or "never"
                print(f"{mask_number(entry.number):<16} until {until:<21} {entry.note}")
        if not args.json:
            print(f"{shown} of {suppression.count()} suppressed numbers shown")
        return 0
    if args.action == "export":
        if not args.values:
            for entry in suppression.entries():
                print(entry_json(entry))
            return 0
        with Path(args.values[0]).open("w", encoding="utf-8") as out:
            for entry in suppression.entries():
                out.write(entry_json(entry) + "\n")
        return 0
    if not args.note.strip():
        return _usage(f"{args.action} needs --note: say why, it is kept with the action")
    try:
        expire_at = instant(args.expire_at, "--expire-at")
    except ContactError as exc:
        return _usage(str(exc))
    audit = Audit(client, keys)
    if args.action == "import":
        if len(args.values) != 1 or not Path(args.values[0]).is_file():
            return _usage("import needs one file: levers-admin suppress import FILE")
        rules = settings.contact_rules
        if region:
            from dataclasses import replace

            rules = replace(rules, default_region=region)
        report = suppression.import_file(
            Path(args.values[0]), rules=rules, note=args.note, expire_at=expire_at
        )
        rejected = report.rejected or []
        print(f"suppressed {report.added} new numbers; {len(rejected)} lines refused")
        for line, raw, why in rejected[:20]:
            print(f"  line {line}: {mask_number(raw)}: {why}")
        if len(rejected) > 20:
            print(f"  ... and {len(rejected) - 20} more")
        audit.record(operator(), "suppress import", args.values[0], args.note, added=report.added)
        return 1 if rejected else 0
    if not args.values:
        return _usage(f"{args.action} needs one or more numbers")
    numbers = []
    for raw in args.values:
        try:
            numbers.append(normalise_number(raw, region))
        except ContactError as exc:
            return _usage(f"{mask_number(raw)}: {exc}")
    operations = Operations(client, keys)
    if args.action == "add":
        added = operations.suppress(operator(), numbers, note=args.note, expire_at=expire_at)
        print(f"suppressed {len(numbers)} numbers ({added} new)")
    else:
        removed = operations.unsuppress(operator(), numbers, note=args.note)
        print(f"removed {removed} of {len(numbers)} numbers from the do-not-call list")
    return 0


def _usage(message: str) -> int:
    print(f"levers-admin suppress: {message}", file=sys.stderr)
    return 2
