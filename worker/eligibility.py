"""May this contact be called now? The calling policy applied to one contact, by the shared clock.

It is asked twice: when the aggregator accepts a contact (send it on, hold it until a time, or
dead-letter it as expired) and again right before its batch's request leaves (a window that
closed while the batch waited for the rate limit puts the contact back on hold). The policy
itself is pure (worker/policy); this module only turns its answer into what the Redis scripts
take, in ms of the shared clock.

A contact's schedule travels with it through Redis (in its pending, held and batch entries), so
the second look sees what the first saw: the producer's time zone, not_before and expire_at,
and whether an operator released it (then its window is not checked again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from worker.contacts import Contact
from worker.deadletters import EXPIRED
from worker.policy import CallingPolicy, Closed, Expired, Open
from worker.policy.caps import Caps, format_duration
from worker.policy.decision import decide as decide_window

NEVER = -1  # a hold with no known release time (an operator or a policy change ends it)


@dataclass(frozen=True)
class Schedule:
    time_zone: str | None = None
    not_before_ms: int | None = None
    expire_ms: int | None = None
    operator: bool = False  # released by an operator: window and not_before not checked again

    @classmethod
    def of(cls, contact: Contact) -> Schedule:
        return cls(
            contact.time_zone,
            None if contact.not_before is None else int(contact.not_before * 1000),
            None if contact.expire_at is None else int(contact.expire_at * 1000),
        )

    @classmethod
    def from_json(cls, data: Any) -> Schedule:
        """From the stored form (absent or {} for none)."""
        if not isinstance(data, dict):
            return cls()
        return cls(data.get("tz"), data.get("nb"), data.get("x"), bool(data.get("op")))

    def to_json(self) -> str:
        """The stored form, '' when there is nothing to store (the common case)."""
        data: dict[str, Any] = {}
        if self.time_zone is not None:
            data["tz"] = self.time_zone
        if self.not_before_ms is not None:
            data["nb"] = self.not_before_ms
        if self.expire_ms is not None:
            data["x"] = self.expire_ms
        if self.operator:
            data["op"] = 1
        return json.dumps(data, separators=(",", ":")) if data else ""


@dataclass(frozen=True)
class Send:
    until_ms: int = 0  # when its window closes (0: nothing closes it)


@dataclass(frozen=True)
class Hold:
    release_ms: int  # NEVER: not known
    reason: str


@dataclass(frozen=True)
class Drop:
    """Never sent: to the dead letters with `reason` (expired, suppressed, frequency_capped,
    cancelled)."""

    reason: str
    detail: str


Verdict = Send | Hold | Drop
SEND_NOW = Send()


@dataclass(frozen=True)
class CapsRule:
    """The frequency caps of one template, as gates.lua takes them."""

    json: str
    dead_letter: bool  # over the cap: dead-letter (True) or hold until it frees (False)
    # gates.lua's name of each cap ("o0" the gap over every template, "t2" this template's
    # second limit) -> (scope, cap) for levers_contacts_capped_total: a handful per template.
    names: tuple[tuple[str, tuple[str, str]], ...] = ()

    def describe(self, which: str) -> tuple[str, str]:
        """(scope, cap) of the cap gates.lua named `which`: ("every_template", "1 per 1d")."""
        return dict(self.names).get(which, ("unknown", which or "unknown"))


NO_CAPS_RULE = CapsRule('{"o":[],"og":0,"t":[],"tg":0,"ttl":0}', False)


def _cap_names(scope: str, tag: str, caps: Caps) -> list[tuple[str, tuple[str, str]]]:
    names = [(f"{tag}0", (scope, f"gap {format_duration(caps.min_gap)}"))]
    names += [(f"{tag}{i}", (scope, str(limit))) for i, limit in enumerate(caps.limits, 1)]
    return names


class Eligibility:
    def __init__(self, policy: CallingPolicy) -> None:
        self.policy = policy
        self._caps: dict[str | None, CapsRule] = {}

    def caps(self, template_id: str | None) -> CapsRule:
        """The caps a call for `template_id` counts against: every template's and its own."""
        if template_id not in self._caps:
            overall, own = self.policy.caps_for(template_id)
            data = {
                "o": [[limit.calls, limit.period * 1000] for limit in overall.limits],
                "og": overall.min_gap * 1000,
                "t": [[limit.calls, limit.period * 1000] for limit in own.limits],
                "tg": own.min_gap * 1000,
                "ttl": max(overall.longest, own.longest) * 1000,
            }
            dead = "dead_letter" in (overall.over, own.over)
            names = _cap_names("every_template", "o", overall) + _cap_names("template", "t", own)
            self._caps[template_id] = CapsRule(
                json.dumps(data, separators=(",", ":")), dead, tuple(names)
            )
        return self._caps[template_id]

    def warm(self) -> None:
        """Load what a first decision loads (phonenumbers' time-zone data, zone files), so that
        no contact's decision pays for it, least of all one right before its request."""
        import time

        self.verdict("+966501234567", None, Schedule(), time.time())
        self.caps(None)

    def verdict(
        self, number: str, template_id: str | None, schedule: Schedule, now: float
    ) -> Verdict:
        not_before = None if schedule.not_before_ms is None else schedule.not_before_ms / 1000
        expire_at = None if schedule.expire_ms is None else schedule.expire_ms / 1000
        if schedule.operator:
            # Released by an operator: the timing is theirs (window and not_before); its
            # expire_at still stands.
            decision = decide_window((), now, None, expire_at)
        else:
            decision = self.policy.decide(
                number,
                template_id,
                now,
                time_zone=schedule.time_zone,
                not_before=not_before,
                expire_at=expire_at,
            )
        if isinstance(decision, Open):
            # Rounded down: a window is never taken to be open a fraction of a ms too long.
            return Send(0 if decision.until is None else int(decision.until * 1000))
        if isinstance(decision, Closed):
            release = NEVER if decision.until is None else _ceil_ms(decision.until)
            return Hold(release, decision.reason)
        assert isinstance(decision, Expired)
        if decision.blocked_by is None:
            return Drop(EXPIRED, "expire_at passed before it could be called")
        return Drop(EXPIRED, f"it could not be called before expire_at ({decision.blocked_by})")


def _ceil_ms(seconds: float) -> int:
    # Rounded up: a release never comes a fraction of a ms early.
    return -int(-seconds * 1000 // 1)
