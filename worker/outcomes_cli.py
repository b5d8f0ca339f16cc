"""levers-admin: `contacts show`, `batches show`, `outcomes unmatched`, `callbacks ...`.

Numbers are masked unless `--json`, which prints whole records for reconciliation (as
`dead-letters list --json` does). Exit 0 when found, 1 when nothing is known of the id.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

COMMANDS = ("contacts", "batches", "outcomes", "callbacks")


def add_parser(subparsers: Any) -> None:
    """Add the outcome commands to levers-admin's subcommands."""
    contacts = subparsers.add_parser("contacts", help="a contact's call outcome")
    actions = contacts.add_subparsers(dest="contacts_action", required=True)
    show = actions.add_parser("show", help="the outcome of the call made for a contact id")
    show.add_argument("id", help="contact id (what the producer got back)")
    show.add_argument("--json", action="store_true", help="the whole record, number unmasked")

    batches = subparsers.add_parser("batches", help="a batch: its state and its calls' outcomes")
    actions = batches.add_subparsers(dest="batches_action", required=True)
    show = actions.add_parser("show", help="a batch's record, outcomes and dead letters")
    show.add_argument("id", help="batch id")
    show.add_argument("--json", action="store_true", help="whole records, numbers unmasked")

    outcomes = subparsers.add_parser("outcomes", help="call-ended events that matched nothing")
    actions = outcomes.add_subparsers(dest="outcomes_action", required=True)
    unmatched = actions.add_parser("unmatched", help="the most recent unmatched events")
    unmatched.add_argument("--limit", type=int, default=50)
    unmatched.add_argument("--json", action="store_true", help="whole records, numbers unmasked")

    callbacks = subparsers.add_parser("callbacks", help="outcome callbacks that were given up")
    callbacks.add_argument("action", choices=["list", "replay", "purge"])
    callbacks.add_argument("--id", action="append", help="only this callback id (repeatable)")
    callbacks.add_argument("--all", action="store_true", help="replay or purge every one")
    callbacks.add_argument("--json", action="store_true", help="whole records")


def handle(args: argparse.Namespace) -> int:
    from worker.connection import connect
    from worker.keys import Keys
    from worker.outcomes import OutcomeStore
    from worker.settings import settings_or_exit

    settings = settings_or_exit()
    client = connect(settings)
    keys = Keys(settings.namespace)
    store = OutcomeStore(client, keys, settings.outcome_retention_seconds)
    if args.command == "contacts":
        return show_contact(store, args.id, args.json)
    if args.command == "batches":
        return show_batch(store, args.id, args.json)
    if args.command == "outcomes":
        return show_unmatched(store.unmatched(args.limit), args.json)
    return callbacks_command(settings, client, keys, args)


def show_contact(store: Any, contact_id: str, as_json: bool) -> int:
    record = store.contact(contact_id)
    if record is None:
        print(f"no outcome recorded for contact {contact_id} (not called yet, or expired)")
        return 1
    if as_json:
        print(json.dumps(record, indent=2, sort_keys=True))
        return 0
    outcome = record.get("outcome", {})
    print(f"contact {contact_id}")
    print(f"  batch       {record.get('batchId')} ({record.get('batchKey')})")
    print(f"  number      {_masked(record.get('numberTo'))}")
    print(f"  ended at    {_time(record.get('endedAt'))}")
    for name in ("deliveryStatus", "endedReason", "duration", "callOutput", "providerStatus"):
        if name in outcome:
            print(f"  {name:<15} {_short(outcome[name])}")
    if record.get("settled"):
        print(f"  settled the unknown outcome {record.get('settledDeadLetter')}")
    retry = record.get("retry")
    if isinstance(retry, dict):
        print(
            f"  retry {retry.get('number')} scheduled as contact {retry.get('contactId')}, "
            f"not before {_time(retry.get('notBefore'))}"
        )
    return 0


def show_batch(store: Any, batch_id: str, as_json: bool) -> int:
    batch = store.batch(batch_id)
    if batch is None:
        print(f"nothing is known of batch {batch_id} (never cut here, or expired)")
        return 1
    if as_json:
        print(json.dumps(batch, indent=2, sort_keys=True))
        return 0
    record = batch["record"]
    print(f"batch {batch_id}")
    for name in ("key", "state", "size", "trigger", "attempts", "status"):
        if name in record:
            print(f"  {name:<9} {record[name]}")
    if "created_ms" in record:
        print(f"  cut at    {_time(int(record['created_ms']) / 1000)}")
    print(f"outcomes ({len(batch['outcomes'])}):")
    for item in batch["outcomes"]:
        outcome = item.get("outcome", {})
        print(
            f"  {item['contactId']:<40} {_masked(item.get('numberTo')):<16} "
            f"{outcome.get('deliveryStatus', '-'):<5} {outcome.get('endedReason', '-'):<28} "
            f"{outcome.get('duration', '-')}"
        )
    print(f"dead letters ({len(batch['deadLetters'])}):")
    for letter in batch["deadLetters"]:
        number = _masked(letter.get("contact", {}).get("numberToCall"))
        print(f"  {letter['id']:<40} {number:<16} {letter['reason']}")
    return 0


def show_unmatched(records: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        for record in records:
            print(json.dumps(record, sort_keys=True))
        return 0
    if not records:
        print("no unmatched events")
        return 0
    for record in records:
        outcome = record.get("outcome", {})
        print(
            f"{_time(record.get('receivedAt'))}  {record['eventId']:<40} {record['reason']:<15} "
            f"{_masked(record.get('numberTo')):<16} {outcome.get('deliveryStatus', '-')}"
        )
    print(f"{len(records)} unmatched events")
    return 0


def callbacks_command(settings: Any, client: Any, keys: Any, args: argparse.Namespace) -> int:
    from worker.notify import CallbackDeadLetters

    dead = CallbackDeadLetters(client, keys)
    if args.action != "list" and not (args.id or args.all):
        print(f"levers-admin: callbacks {args.action} needs --id or --all", file=sys.stderr)
        return 2
    records = dead.select(args.id or ())
    if args.action == "list":
        if args.json:
            for record in records:
                print(json.dumps(record, sort_keys=True))
        elif not records:
            print("no dead-lettered callbacks")
        else:
            for r in records:
                print(f"{r['id']:<40} {r['attempts']:>3} attempts  {r['url']}  {r['error'][:60]}")
            print(f"{len(records)} dead-lettered callbacks")
        return 0
    if args.action == "purge":
        print(f"purged {dead.delete(r['id'] for r in records)} callbacks")
        return 0
    from worker.broker import build_broker

    broker = build_broker(settings, client=client)
    print(f"replayed {dead.replay(broker, records)} callbacks")
    return 0


def _masked(number: Any) -> str:
    from worker.contacts import mask_number

    return mask_number(number) if isinstance(number, str) and number else "-"


def _time(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
