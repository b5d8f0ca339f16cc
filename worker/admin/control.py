"""`levers-admin pause|resume|cancel (--template T | --all) --note TEXT`: the brakes.

pause   no request leaves for the template; contacts keep arriving and waiting.
resume  the pause ends; the template's waiting batches are sent at once, in their turn.
cancel  what waits for the template (pending, held, cut and queued batches, contacts still in
        the queue) goes to the dead letters as `cancelled`, replayable with `levers-admin
        dead-letters replay --reason cancelled`. A request already on the wire finishes.

--template takes an aiSettingsTemplateId, or `default` for contacts without one. Each action
is recorded with its time, who (LEVERS_OPERATOR, else user@host) and the note, and shown by
`levers-admin status`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import redis

from worker.admin.common import EXIT_CODES, admin_epilog
from worker.audit import operator
from worker.broker import build_broker
from worker.commands import HelpFormatter
from worker.control import ALL, Control, parse_template
from worker.keys import Keys
from worker.runtime import buffer_config
from worker.settings import Settings


def add_parser(subparsers: Any) -> None:
    for action, summary in (
        ("pause", "stop sending a template's contacts (they keep waiting)"),
        ("resume", "send a paused template's contacts again"),
        ("cancel", "dead-letter what waits for a template (replayable)"),
    ):
        parser = subparsers.add_parser(
            action,
            help=summary,
            description=__doc__,
            formatter_class=HelpFormatter,
            epilog=admin_epilog(EXIT_CODES),
        )
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--template", help="aiSettingsTemplateId, or `default`")
        which.add_argument("--all", action="store_true", help="every template")
        parser.add_argument("--note", default="", help="why (required; kept with the action)")
        parser.set_defaults(run=handler, control_action=action)


def handler(settings: Settings, client: redis.Redis, args: argparse.Namespace) -> int:
    if not args.note.strip():
        print(f"levers-admin {args.control_action}: --note is required", file=sys.stderr)
        return 2
    template = ALL if args.all else parse_template(args.template)
    if template is None:
        print(
            f"levers-admin {args.control_action}: --template must be a UUID or `default`",
            file=sys.stderr,
        )
        return 2
    broker = build_broker(settings, client=client)
    control = Control(
        client,
        Keys(settings.namespace),
        buffer_config(settings),
        broker,
        batch_retention_seconds=settings.batch_retention_seconds,
    )
    who = operator()
    shown = "every template" if template == ALL else template
    if args.control_action == "pause":
        fresh = control.pause(template, note=args.note, who=who)
        print(f"paused {shown}" + ("" if fresh else " (it was paused already)"))
    elif args.control_action == "resume":
        tokens = control.resume(template, note=args.note, who=who)
        print(f"resumed {shown}: {tokens} waiting batches handed a send token")
    else:
        done = control.cancel(template, note=args.note, who=who)
        print(
            f"cancelled {shown}: {done.contacts} contacts dead-lettered now, {done.messages} "
            "queued messages marked (their contacts are dead-lettered when reached)"
        )
    return 0
