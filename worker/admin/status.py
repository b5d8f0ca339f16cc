"""`levers-admin status`: what is pending, in flight, sent, rejected and dead.

`status_report` is the one place the status is gathered; the text and `--json` both print
from it, so they show the same numbers, zeros included.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import redis

from worker.actors import store_config
from worker.admin.common import READ_EXIT_CODES, admin_epilog
from worker.commands import HelpFormatter, paragraphs
from worker.connection import connect, describe
from worker.contacts import REJECT_REASONS
from worker.keys import Keys
from worker.settings import Settings
from worker.store import BatchStore

# Running totals shown even when zero, in this order; any other counter found is shown after.
TOTALS = (
    "contacts_appended",
    "contacts_merged",
    "contacts_duplicate",
    "batches_cut_size",
    "batches_cut_time",
    "batches_sent",
    "contacts_sent",
    "contacts_dead",
)
# Batch states between a cut and the end (sent or dead), shown even when zero.
IN_FLIGHT_STATES = ("cut", "queued", "claimed", "sending")
_REJECTED = "rejected_"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="pending contacts, batches in flight, totals, rejects, dead letters",
        description=paragraphs(
            "Pending contacts and the age of the oldest per batch key, batches in "
            "flight by state, running totals, rejected contacts by reason and dead letters held. "
            "Read from Redis: the same for every replica."
        ),
        formatter_class=HelpFormatter,
        epilog=admin_epilog(READ_EXIT_CODES),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the same report as one JSON object (default: text)",
    )
    parser.set_defaults(run=handler)


def handler(settings: Settings, client: redis.Redis, args: argparse.Namespace) -> int:
    report = status_report(settings, client)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report)
    return 0


def status_report(settings: Settings, client: redis.Redis | None = None) -> dict[str, Any]:
    """Everything `status` shows, as plain data (totals and reasons with zeros included)."""
    client = client if client is not None else connect(settings)
    store = BatchStore(client, Keys(settings.namespace), store_config(settings))
    pending = [
        {
            "batch_key": s.batch_key,
            "contacts": s.pending,
            "oldest_age_seconds": round(s.oldest_age_seconds, 3),
        }
        for s in store.pending_status()
    ]
    in_flight = {state: 0 for state in IN_FLIGHT_STATES} | store.inflight_states()
    stats = store.stats()
    totals = {name: stats.get(name, 0) for name in TOTALS} | {
        name: value
        for name, value in sorted(stats.items())
        if not name.startswith(_REJECTED) and name not in TOTALS
    }
    rejected = {reason: stats.get(_REJECTED + reason, 0) for reason in REJECT_REASONS} | {
        name[len(_REJECTED) :]: value
        for name, value in sorted(stats.items())
        if name.startswith(_REJECTED)
    }
    return {
        "namespace": settings.namespace,
        "redis": describe(settings),
        "pending_contacts": sum(row["contacts"] for row in pending),
        "pending": pending,
        "batches_in_flight": in_flight,
        "totals": totals,
        "rejected": rejected,
        "dead_letters": int(client.zcard(store.keys.dead_index)),
    }


def print_status(report: dict[str, Any]) -> None:
    print(f"namespace: {report['namespace']} on {report['redis']}")
    print(f"pending contacts: {report['pending_contacts']}")
    for row in report["pending"]:
        age = row["oldest_age_seconds"]
        print(f"  {row['batch_key']:<45} {row['contacts']:>7}  oldest {age:.1f}s")
    in_flight = report["batches_in_flight"]
    print(
        f"batches in flight: {sum(in_flight.values())} ("
        + ", ".join(f"{state}={count}" for state, count in in_flight.items())
        + ")"
    )
    print("totals:")
    for name, value in report["totals"].items():
        print(f"  {name:<22} {value}")
    rejected = report["rejected"]
    print(f"rejected: {sum(rejected.values())}")
    for reason, count in rejected.items():
        print(f"  {reason:<22} {count}")
    print(f"dead letters held: {report['dead_letters']}")
