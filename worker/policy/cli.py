"""`levers-admin policy check FILE` and `levers-admin policy explain NUMBER`.

`check` needs nothing but the file: exit 0 and a summary when it is valid, else every problem
(with its TOML path) and exit 1. Exit 2 is a usage error, as for every levers-admin command.
`explain` reads the policy in force (LEVERS_POLICY_FILE or LEVERS_DEFAULT_WINDOW, or
`--policy FILE`) and never touches Redis.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from worker.errors import ContactError, PolicyError

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
_EPOCH = re.compile(r"^\d+(\.\d+)?$")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `policy check|explain` to levers-admin's subcommands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "policy", help="check a calling policy file, or explain the decision for a number"
    )
    actions = parser.add_subparsers(dest="policy_action", required=True)
    check = actions.add_parser("check", help="validate a policy file (exit 0 valid, 1 not)")
    check.add_argument("file", help="the TOML policy file")
    explain = actions.add_parser(
        "explain", help="zones, window and next opening for a number, in its local time"
    )
    explain.add_argument("number", help="phone number, +E.164 (or national with the region)")
    explain.add_argument("--template", help="aiSettingsTemplateId (default: none)")
    explain.add_argument(
        "--at",
        help="instant: ISO 8601 with an offset, epoch seconds, or a local time without an "
        "offset in the number's zone (default: now)",
    )
    explain.add_argument("--time-zone", help="the contact's time_zone, as a producer gives it")
    explain.add_argument("--not-before", help="the contact's not_before (as --at)")
    explain.add_argument("--expire-at", help="the contact's expire_at (as --at)")
    explain.add_argument("--policy", help="this policy file instead of the one in force")
    explain.add_argument("--region", help="region for a number in national form (e.g. SA)")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def handle(args: argparse.Namespace) -> int:
    if args.policy_action == "check":
        return check(args.file)
    return explain_command(args)


def check(path: str) -> int:
    from worker.policy.config import load_policy

    try:
        policy = load_policy(path)
    except PolicyError as exc:
        print(f"{path}: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            print(f"  {problem}")
        return EXIT_INVALID
    print(f"{path}: valid")
    for line in summary(policy):
        print(f"  {line}")
    return EXIT_VALID


def summary(policy: Any) -> list[str]:
    def rule_text(rule: Any) -> str:
        window = rule.window if isinstance(rule.window, str) else rule.window.name
        if not isinstance(rule.window, str) and window.startswith("custom"):
            window = f"custom: {rule.window.describe()}"
        text = window + (f", time zone {rule.time_zone}" if rule.time_zone else "")
        text += f", own caps {rule.caps.describe()}" if rule.caps.limits else ""
        text += f", {rule.retries.describe()}" if rule.retries.enabled else ""
        return text + (f", outcomes to {rule.outcomes.describe()}" if rule.outcomes.enabled else "")

    lines = [f"default: {rule_text(policy.default)}"]
    lines += [f"template {key}: {rule_text(rule)}" for key, rule in policy.templates.items()]
    lines += [f"country {key}: {window.describe()}" for key, window in policy.countries.items()]
    lines.append(f"caps (every template together): {policy.caps.describe()}")
    return lines


def explain_command(args: argparse.Namespace) -> int:
    from worker.contacts import normalise_number
    from worker.policy.config import load_policy, policy_from_settings
    from worker.policy.explain import explain
    from worker.policy.zones import recipient_for, time_zone_problem
    from worker.settings import settings_or_exit

    settings = settings_or_exit()
    try:
        policy = load_policy(args.policy) if args.policy else policy_from_settings(settings)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    try:
        number = normalise_number(args.number, args.region or settings.default_region)
    except ContactError as exc:
        return _usage(f"{args.number!r}: {exc}")
    if args.time_zone and (problem := time_zone_problem(args.time_zone)):
        return _usage(problem)
    zones = policy.plan(recipient_for(number, args.time_zone), args.template).zones
    try:
        at = parse_instant(args.at, zones) if args.at else time.time()
        not_before = parse_instant(args.not_before, zones) if args.not_before else None
        expire_at = parse_instant(args.expire_at, zones) if args.expire_at else None
    except ValueError as exc:
        return _usage(str(exc))
    try:
        template = _template(args.template)
    except ValueError:
        return _usage(f"--template {args.template!r} is not a UUID")
    result = explain(
        policy,
        number,
        at,
        template_id=template,
        time_zone=args.time_zone,
        not_before=not_before,
        expire_at=expire_at,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print("\n".join(result.lines()))
    return EXIT_VALID


def parse_instant(text: str, zones: tuple[str, ...]) -> float:
    """ISO 8601 (an offset or Z), epoch seconds, or a local time in the number's only zone."""
    if _EPOCH.match(text.strip()):
        return float(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not ISO 8601 (2026-03-08T09:00-05:00) nor epoch") from None
    if moment.tzinfo is None:
        if len(zones) != 1:
            raise ValueError(
                f"{text!r} has no offset, and the number has {len(zones) or 'no'} known zones: "
                "add an offset or Z"
            )
        moment = moment.replace(tzinfo=ZoneInfo(zones[0]))
    return moment.timestamp()


def _template(value: str | None) -> str | None:
    """The canonical template id, None for none; ValueError for one that is not a UUID."""
    if value is None or value == "default":
        return None
    return str(uuid.UUID(value))


def _usage(message: str) -> int:
    print(f"levers-admin policy: {message}", file=sys.stderr)
    return EXIT_USAGE
