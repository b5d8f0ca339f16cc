"""The calling policy: which window applies to a contact, and the decision for it.

A policy has a default rule, rules per template (by aiSettingsTemplateId; `default` for
contacts sent with none), windows per country for `by_country` (over the presets), and
frequency caps. A rule names a window (`by_country`, `always`, a preset or a custom one),
optionally a time zone that replaces the number's own, and caps counted per template.

    policy.decide(number, template_id, at, time_zone=..., not_before=..., expire_at=...)

is what the pipeline calls when a contact is accepted and again when its batch is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from worker.policy import decision
from worker.policy.caps import DEFAULT_CAPS, NO_CAPS, Caps
from worker.policy.decision import Constraint, Decision, HoldReason
from worker.policy.outcomes import NO_RETRIES, NO_ROUTE, OutcomeRoute, RetryRule
from worker.policy.presets import BOUNDS, BY_COUNTRY, PRESETS
from worker.policy.windows import Window
from worker.policy.zones import Recipient, recipient_for

DEFAULT_TEMPLATE = "default"  # the template key of contacts sent with no aiSettingsTemplateId

WindowChoice = Window | Literal["by_country"]


# eq=False: rules are built once per policy and key caches by identity.
@dataclass(frozen=True, eq=False)
class Rule:
    """What applies to one template's contacts; `origin` names where it was written."""

    window: WindowChoice
    time_zone: str | None = None  # replaces the number's zones (not a producer's time_zone)
    caps: Caps = NO_CAPS  # counted over this template's calls only
    origin: str = "default"
    retries: RetryRule = NO_RETRIES  # retries of calls that did not reach the person
    outcomes: OutcomeRoute = NO_ROUTE  # where outcomes go to the producer

    def describe(self) -> str:
        name = self.window if isinstance(self.window, str) else self.window.name
        return f"{name} ({self.origin})"


@dataclass(frozen=True)
class Plan:
    """How a recipient's decision is made under a rule: constraints, or a hold without end."""

    constraints: tuple[Constraint, ...]
    window: Window | None  # None when held: no window for the country
    bound: Window | None  # the hard bound of the number's region, if any
    zones: tuple[str, ...]
    hold: HoldReason | None = None


@dataclass(frozen=True, eq=False)
class CallingPolicy:
    default: Rule = field(default_factory=lambda: Rule(BY_COUNTRY))
    templates: Mapping[str, Rule] = field(default_factory=dict)
    countries: Mapping[str, Window] = field(default_factory=dict)  # over PRESETS
    caps: Caps = DEFAULT_CAPS  # per number, over every template's calls
    source: str = "built-in default"

    # -- the calls the pipeline makes -------------------------------------------------------

    def decide(
        self,
        number: str,
        template_id: str | None,
        at: float,
        *,
        time_zone: str | None = None,
        not_before: float | None = None,
        expire_at: float | None = None,
    ) -> Decision:
        """May `number` (E.164) be called for `template_id` at `at` (POSIX seconds)?"""
        return self.decide_for(
            recipient_for(number, time_zone),
            template_id,
            at,
            not_before=not_before,
            expire_at=expire_at,
        )

    def decide_for(
        self,
        recipient: Recipient,
        template_id: str | None,
        at: float,
        *,
        not_before: float | None = None,
        expire_at: float | None = None,
    ) -> Decision:
        plan = self.plan(recipient, template_id)
        if plan.hold is not None:
            return decision.held(plan.hold, at, expire_at)
        return decision.decide(plan.constraints, at, not_before, expire_at)

    def rule_for(self, template_id: str | None) -> Rule:
        key = template_id or DEFAULT_TEMPLATE
        return self.templates.get(key) or self.default

    def caps_for(self, template_id: str | None) -> tuple[Caps, Caps]:
        """(caps over every template's calls, caps over this template's calls only)."""
        return self.caps, self.rule_for(template_id).caps

    # -- how a decision is made ------------------------------------------------------------

    def plan(self, recipient: Recipient, template_id: str | None) -> Plan:
        return _plan(self, self.rule_for(template_id), recipient)

    def country_window(self, region: str | None) -> Window | None:
        if region is None:
            return None
        return self.countries.get(region) or PRESETS.get(region)


@lru_cache(maxsize=16384)
def _plan(policy: CallingPolicy, rule: Rule, recipient: Recipient) -> Plan:
    zones = recipient.zones
    if rule.time_zone is not None and recipient.source == "number":
        zones = (rule.time_zone,)
    bound = BOUNDS.get(recipient.region) if recipient.region else None
    if isinstance(rule.window, Window):
        window: Window | None = rule.window
    else:
        window = policy.country_window(recipient.region)
    if window is None:
        return Plan((), None, bound, zones, "no_window_for_country")
    windows = [w for w in (window, bound) if w is not None and not w.always]
    if windows and not zones:
        return Plan((), window, bound, zones, "unknown_time_zone")
    constraints = tuple((w, z) for w in windows for z in zones)
    return Plan(constraints, window, bound, zones)
