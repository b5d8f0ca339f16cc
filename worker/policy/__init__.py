"""Calling policy: when each recipient may be called, in their own time, and how often.

Pure functions, no Redis: the pipeline asks, for a contact at an instant (POSIX seconds),

    policy = policy_from_settings(settings)          # once, at start-up
    decision = policy.decide(number, template_id, now, time_zone=..., not_before=...,
                             expire_at=...)
    # Open(until)            call it now; re-check a batch still waiting at `until`
    # Closed(reason, until)  hold it until `until` (None: until an operator or a policy acts)
    # Expired(expire_at, blocked_by)  dead-letter it as `expired`

Modules: windows (weekly local ranges and their UTC intervals), calendars (Ramadan, public
holidays), presets (country windows as data), schedule (a custom window from its table),
zones (the recipient's time zones), decision (open until / closed until), caps (frequency
caps), policy (which rule applies), config (the TOML file), explain and cli (`levers-admin
policy check|explain`). See docs/calling-hours.md.
"""

from worker.policy.caps import DEFAULT_CAPS, NO_CAPS, Caps, Limit
from worker.policy.config import (
    default_policy,
    load_policy,
    parse_policy,
    policy_from_settings,
    policy_or_exit,
)
from worker.policy.decision import (
    EXPIRED,
    HOLD_REASONS,
    NO_WINDOW_FOR_COUNTRY,
    NOT_BEFORE,
    UNKNOWN_TIME_ZONE,
    WINDOW_CLOSED,
    Closed,
    Decision,
    Expired,
    HoldReason,
    Open,
)
from worker.policy.policy import DEFAULT_TEMPLATE, CallingPolicy, Rule
from worker.policy.zones import Recipient, recipient_for, time_zone_problem

__all__ = [
    "DEFAULT_CAPS",
    "DEFAULT_TEMPLATE",
    "EXPIRED",
    "HOLD_REASONS",
    "NOT_BEFORE",
    "NO_CAPS",
    "NO_WINDOW_FOR_COUNTRY",
    "UNKNOWN_TIME_ZONE",
    "WINDOW_CLOSED",
    "CallingPolicy",
    "Caps",
    "Closed",
    "Decision",
    "Expired",
    "HoldReason",
    "Limit",
    "Open",
    "Recipient",
    "Rule",
    "default_policy",
    "load_policy",
    "parse_policy",
    "policy_from_settings",
    "policy_or_exit",
    "recipient_for",
    "time_zone_problem",
]
