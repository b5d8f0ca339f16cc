"""`levers-admin status`: what is pending, in flight, sent, rejected and dead.

`status_report` is the one place the status is gathered; the text and `--json` both print
from it, so they show the same numbers, zeros included.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

import redis

from worker.admin.common import READ_EXIT_CODES, admin_epilog
from worker.audit import Audit
from worker.backlog import read_backlog, read_totals
from worker.buffers import Buffers
from worker.commands import HelpFormatter, paragraphs
from worker.connection import connect, describe
from worker.contacts import REJECT_REASONS
from worker.control import Control
from worker.holds import Holds
from worker.keys import Keys
from worker.outbox import IN_FLIGHT_STATES
from worker.runtime import buffer_config
from worker.settings import Settings

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


def status_report(
    settings: Settings, client: redis.Redis | None = None, *, actions: int = 10
) -> dict[str, Any]:
    """Everything `status` shows, as plain data (totals and reasons with zeros included), with
    the last `actions` operator actions. The console's overview is built on it too."""
    client = client if client is not None else connect(settings)
    keys = Keys(settings.namespace)
    buffers = Buffers(client, keys, buffer_config(settings))
    holds = Holds(client, keys, buffer_config(settings))
    backlog = read_backlog(client, keys)
    pending = [
        {
            "batch_key": s.batch_key,
            "contacts": s.pending,
            "oldest_age_seconds": round(s.oldest_age_seconds, 3),
        }
        for s in buffers.pending_status()
    ]
    oldest_hold = holds.oldest_age()
    stats = read_totals(client, keys)
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
        "backlog_contacts": backlog.total,
        "queued_contacts": backlog.queued,
        "queue_messages": backlog.queue_messages,
        "pending_contacts": backlog.pending,
        "pending": pending,
        "held_contacts": backlog.held,
        "held": {
            "by_reason": holds.counts(),
            "oldest_age_seconds": None if oldest_hold is None else round(oldest_hold, 3),
            "by_batch_key": [
                {
                    "batch_key": k.batch_key,
                    "contacts": k.held,
                    "next_release_utc": utc(k.next_release),
                }
                for k in holds.per_key()
            ],
        },
        "batches_in_flight": {state: backlog.batches[state] for state in IN_FLIGHT_STATES},
        "contacts_in_flight": {state: backlog.in_flight[state] for state in IN_FLIGHT_STATES},
        "paused": Control.read_paused(client, keys),
        "suppressed_numbers": int(client.hlen(keys.suppressed)),
        "totals": totals,
        "rejected": rejected,
        "dead_letters": int(client.zcard(keys.dead_index)),
        "recent_actions": Audit(client, keys).recent(actions),
    }


def utc(seconds: float | None) -> str | None:
    """An instant of the shared clock as ISO 8601 in UTC, seconds precision."""
    if seconds is None:
        return None
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
    return stamp.replace("+00:00", "Z")


def print_status(report: dict[str, Any]) -> None:
    print(f"namespace: {report['namespace']} on {report['redis']}")
    print(f"backlog: {report['backlog_contacts']} contacts not yet sent")
    messages = report["queue_messages"]
    print(
        f"queued contacts (not yet aggregated): {report['queued_contacts']} "
        f"(messages: {messages['queue']} in the queue, {messages['delayed']} waiting to be "
        f"retried, {messages['failed']} failed)"
    )
    print(f"pending contacts: {report['pending_contacts']}")
    for row in report["pending"]:
        age = row["oldest_age_seconds"]
        print(f"  {row['batch_key']:<45} {row['contacts']:>7}  oldest {age:.1f}s")
    held = report["held"]
    oldest = held["oldest_age_seconds"]
    print(
        f"held contacts: {report['held_contacts']} ("
        + ", ".join(f"{r}={n}" for r, n in held["by_reason"].items())
        + ")"
        + ("" if oldest is None else f", oldest {oldest:.0f}s")
    )
    for row in held["by_batch_key"]:
        opening = row["next_release_utc"] or "none known (an operator or a policy change)"
        print(f"  {row['batch_key']:<45} {row['contacts']:>7}  next release {opening}")
    batches, contacts = report["batches_in_flight"], report["contacts_in_flight"]
    print(
        f"batches in flight: {sum(batches.values())} ("
        + ", ".join(f"{state}={batches[state]}" for state in batches)
        + f"), {sum(contacts.values())} contacts"
    )
    paused = report["paused"]
    print("paused templates: " + (", ".join(sorted(paused)) if paused else "none"))
    for template, record in sorted(paused.items()):
        print(f"  {template}: since {utc(record['at'])} by {record['by']}: {record['note']}")
    print(f"suppressed numbers: {report['suppressed_numbers']}")
    print("totals:")
    for name, value in report["totals"].items():
        print(f"  {name:<22} {value}")
    rejected = report["rejected"]
    print(f"rejected: {sum(rejected.values())}")
    for reason, count in rejected.items():
        print(f"  {reason:<22} {count}")
    print(f"dead letters held: {report['dead_letters']}")
    actions = report["recent_actions"]
    if actions:
        print("recent operator actions:")
        for entry in actions:
            print(
                f"  {utc(entry['at'])} {entry['who']} {entry['action']} {entry['target']}: "
                f"{entry['note']}"
            )
