"""`policy explain`: what the policy decides for one number, told in the recipient's own time.

The zones and where they came from, the rule and window in force (and the US bound when it
applies), the day's hours, the decision, and the next opening, each instant shown in every
zone of the number (the first few of a long list) and in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from worker.contacts import mask_number
from worker.policy.decision import Closed, Decision, Expired, Open
from worker.policy.policy import CallingPolicy
from worker.policy.windows import Window
from worker.policy.zones import Recipient, recipient_for

SHOWN_ZONES = 4  # instants are shown in this many distinct local times, then in UTC


@dataclass
class Explanation:
    number: str  # masked
    region: str | None
    template: str
    rule: str
    window: str
    zones: tuple[str, ...]
    zone_source: str
    at: float
    decision: Decision
    next_opening: float | None
    today: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"number:       {self.number} (region {self.region or 'none'})",
            f"template:     {self.template}",
            f"rule:         {self.rule}",
            f"window:       {self.window}",
            f"time zones:   {_zone_list(self.zones)} ({self.zone_source})",
            f"at:           {when(self.at, self.zones)}",
        ]
        out += [f"today:        {line}" for line in self.today]
        out.append(f"decision:     {self.describe_decision()}")
        if self.next_opening is not None:
            label = "opens again:  " if isinstance(self.decision, Open) else "next opening: "
            out.append(label + when(self.next_opening, self.zones))
        elif not isinstance(self.decision, Expired):
            out.append("next opening: none known: an operator or a policy change must act")
        return out

    def describe_decision(self) -> str:
        d = self.decision
        if isinstance(d, Open):
            end = "no end" if d.until is None else when(d.until, self.zones)
            return f"open: may be called now, until {end}"
        if isinstance(d, Closed):
            return f"held ({d.reason})" + (
                f" until {when(d.until, self.zones)}" if d.until is not None else ""
            )
        blocked = f", held by {d.blocked_by} past it" if d.blocked_by else ""
        return f"expired (expire_at {when(d.expire_at, self.zones)}{blocked})"

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "number": self.number,
            "region": self.region,
            "template": self.template,
            "rule": self.rule,
            "window": self.window,
            "time_zones": list(self.zones),
            "time_zone_source": self.zone_source,
            "at": _iso(self.at),
            "today": self.today,
            "decision": {
                "allowed": d.allowed,
                "reason": None if isinstance(d, Open) else d.reason,
                "until": _iso(getattr(d, "until", None)),
                "expire_at": _iso(d.expire_at) if isinstance(d, Expired) else None,
            },
            "next_opening": _iso(self.next_opening),
        }


def explain(
    policy: CallingPolicy,
    number: str,
    at: float,
    *,
    template_id: str | None = None,
    time_zone: str | None = None,
    not_before: float | None = None,
    expire_at: float | None = None,
) -> Explanation:
    recipient = recipient_for(number, time_zone)
    rule = policy.rule_for(template_id)
    plan = policy.plan(recipient, template_id)
    decision = policy.decide_for(
        recipient, template_id, at, not_before=not_before, expire_at=expire_at
    )
    chosen = rule.window if isinstance(rule.window, str) else rule.window.name
    if plan.window is None:
        window = f"{chosen}: no window for region {recipient.region or 'none'}"
    else:
        shown = f"{chosen} -> {plan.window.name}" if chosen != plan.window.name else chosen
        window = f"{shown}: {plan.window.describe()}"
    if plan.bound is not None and plan.window is not None:
        window += f"; never outside {plan.bound.describe()} ({recipient.region} rule)"
    if recipient.source == "producer":
        source = "given with the contact"
    elif rule.time_zone is not None:
        source = f"the rule's time_zone; the number's: {_zone_list(recipient.zones)}"
    else:
        source = "from the number"
    return Explanation(
        number=mask_number(number),
        region=recipient.region,
        template=template_id or "default (none given)",
        rule=rule.origin if rule.origin == policy.source else f"{rule.origin} in {policy.source}",
        window=window,
        zones=plan.zones,
        zone_source=source,
        at=at,
        decision=decision,
        next_opening=_next_opening(policy, recipient, template_id, decision, expire_at),
        today=_today(plan.window, plan.zones, at) if plan.window else [],
    )


def _next_opening(
    policy: CallingPolicy,
    recipient: Recipient,
    template_id: str | None,
    decision: Decision,
    expire_at: float | None,
) -> float | None:
    """When it may next be called: now's hold's end, or the opening after the open stretch."""
    if isinstance(decision, Closed):
        return decision.until
    if isinstance(decision, Open) and decision.until is not None:
        after = policy.decide_for(recipient, template_id, decision.until, expire_at=expire_at)
        return after.until if isinstance(after, Closed) else None
    return None


def _today(window: Window, zones: tuple[str, ...], at: float) -> list[str]:
    """Each zone's local date and its hours under the window; zones alike share a line."""
    lines: dict[str, list[str]] = {}
    for name in zones:
        day = datetime.fromtimestamp(at, ZoneInfo(name)).date()
        ranges = window.ranges_on(day)
        hours = ", ".join(str(r) for r in ranges) if ranges else "closed"
        note = window.note_on(day)
        text = f"{day:%a %Y-%m-%d}: {hours}" + (f" ({note})" if note else "")
        lines.setdefault(text, []).append(name)
    return [f"{text} in {_names(names)}" for text, names in list(lines.items())[:SHOWN_ZONES]]


def when(instant: float, zones: tuple[str, ...]) -> str:
    """An instant as each zone's clock shows it (zones that agree together), then in UTC."""
    clocks: dict[str, list[str]] = {}
    for name in zones:
        text = f"{datetime.fromtimestamp(instant, ZoneInfo(name)):%a %Y-%m-%d %H:%M %Z}"
        clocks.setdefault(text, []).append(name)
    parts = [f"{text} ({_names(names)})" for text, names in list(clocks.items())[:SHOWN_ZONES]]
    if len(clocks) > SHOWN_ZONES:
        parts.append(f"{len(clocks) - SHOWN_ZONES} more local times")
    parts.append(f"{datetime.fromtimestamp(instant, UTC):%Y-%m-%d %H:%M} UTC")
    return " = ".join(parts)


def _names(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{names[0]} and {len(names) - 1} more"


def _zone_list(zones: tuple[str, ...]) -> str:
    if not zones:
        return "unknown"
    if len(zones) <= SHOWN_ZONES:
        return ", ".join(zones)
    return f"{len(zones)} zones: " + ", ".join(zones)


def _iso(instant: float | None) -> str | None:
    if instant is None:
        return None
    return datetime.fromtimestamp(instant, UTC).isoformat().replace("+00:00", "Z")
