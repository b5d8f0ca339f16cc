"""What a template does with its calls' outcomes: retry unanswered calls, tell the producer.

    [templates."<id>".retries]          # or [default.retries]; off when absent
    delivery_status = ["fail"]          # retry a call whose deliveryStatus is one of these
    ended_reasons = ["customer-did-not-answer", "voicemail"]   # ... or whose endedReason is
    delays = ["30m", "1h", "2h"]        # one per retry, each counted from the previous call's end

    [templates."<id>".outcomes]         # or [default.outcomes]
    actor = "crm_call_ended"            # a dramatiq actor of the producer's own workers,
    queue = "crm.outcomes"              #   on this queue (default "default"), and/or
    url = "https://crm.example/hooks/levers"   # a signed HTTP callback

A template's table replaces the [default] one as a whole (`delays = []` turns retries off for
one template). A retry is a new contact (through the aggregator: calling hours, suppression and
caps apply to it as to any other); `caps_conflicts` finds the retries the caps of the same
policy would never let through when they are due.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from worker.policy.caps import Caps, format_duration, parse_duration

RETRY_KEYS = ("delivery_status", "ended_reasons", "delays")
OUTCOME_KEYS = ("actor", "queue", "url")
MAX_RETRIES = 10
MAX_DELAY = 30 * 86400
DELIVERY_STATUSES = ("pass", "fail")


@dataclass(frozen=True, slots=True)
class RetryRule:
    delivery_status: frozenset[str] = frozenset()
    ended_reasons: frozenset[str] = frozenset()
    delays: tuple[int, ...] = ()  # seconds: the n-th retry waits delays[n - 1]

    @property
    def enabled(self) -> bool:
        return bool(self.delays) and bool(self.delivery_status or self.ended_reasons)

    def wants(self, outcome: Mapping[str, Any]) -> bool:
        """Does a call with this outcome call for a retry?"""
        status = str(outcome.get("deliveryStatus", "")).lower()
        reason = str(outcome.get("endedReason", "")).lower()
        return status in self.delivery_status or reason in self.ended_reasons

    def delay(self, retry: int) -> int | None:
        """Seconds before the `retry`-th retry (1-based), or None past the last one."""
        return self.delays[retry - 1] if 1 <= retry <= len(self.delays) else None

    def describe(self) -> str:
        if not self.enabled:
            return "no retries"
        when = [f"deliveryStatus {s}" for s in sorted(self.delivery_status)]
        when += [f"endedReason {r}" for r in sorted(self.ended_reasons)]
        after = ", ".join(format_duration(d) for d in self.delays)
        return f"retry {' or '.join(when)} after {after}"


@dataclass(frozen=True, slots=True)
class OutcomeRoute:
    """Where a template's outcomes go to its producer (none, either, or both)."""

    actor: str | None = None
    queue: str = "default"
    url: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.actor or self.url)

    def describe(self) -> str:
        parts = [f"actor {self.actor} on {self.queue}"] if self.actor else []
        parts += [f"POST {self.url}"] if self.url else []
        return ", ".join(parts) or "none"


NO_RETRIES = RetryRule()
NO_ROUTE = OutcomeRoute()


def retries_from_table(value: Any, path: str) -> RetryRule | list[str]:
    if not isinstance(value, Mapping):
        return [f"{path}: must be a table with delivery_status, ended_reasons and delays"]
    problems: list[str] = []
    unknown = sorted(set(value) - set(RETRY_KEYS))
    if unknown:
        problems.append(f"{path}: unknown key(s) {', '.join(unknown)} ({', '.join(RETRY_KEYS)})")
    statuses = _words(value.get("delivery_status", []), f"{path}.delivery_status", problems)
    bad = sorted(statuses - set(DELIVERY_STATUSES))
    if bad:
        problems.append(f"{path}.delivery_status: {', '.join(bad)} is not pass or fail")
    reasons = _words(value.get("ended_reasons", []), f"{path}.ended_reasons", problems)
    delays: list[int] = []
    raw_delays = value.get("delays", [])
    if not isinstance(raw_delays, list):
        problems.append(f'{path}.delays: must be a list of durations (e.g. ["30m", "1h"])')
        raw_delays = []
    if len(raw_delays) > MAX_RETRIES:
        problems.append(f"{path}.delays: at most {MAX_RETRIES} retries")
    for index, item in enumerate(raw_delays):
        seconds = parse_duration(item)
        if seconds is None or not 60 <= seconds <= MAX_DELAY:
            problems.append(
                f'{path}.delays[{index}]: {item!r} is not a duration from 1m to 30d (e.g. "30m")'
            )
        else:
            delays.append(seconds)
    if raw_delays and not (statuses or reasons) and not problems:
        problems.append(f"{path}: delays given, but neither delivery_status nor ended_reasons")
    return problems or RetryRule(frozenset(statuses), frozenset(reasons), tuple(delays))


def route_from_table(value: Any, path: str) -> OutcomeRoute | list[str]:
    if not isinstance(value, Mapping):
        return [f"{path}: must be a table with actor (and queue) and/or url"]
    problems: list[str] = []
    unknown = sorted(set(value) - set(OUTCOME_KEYS))
    if unknown:
        problems.append(f"{path}: unknown key(s) {', '.join(unknown)} ({', '.join(OUTCOME_KEYS)})")
    actor, queue, url = value.get("actor"), value.get("queue", "default"), value.get("url")
    for name, item in (("actor", actor), ("queue", queue)):
        if item is not None and not (isinstance(item, str) and _is_name(item)):
            problems.append(f"{path}.{name}: {item!r} is not a dramatiq {name} name")
    if "queue" in value and actor is None:
        problems.append(f"{path}.queue: given without an actor")
    if url is not None and not _is_url(url):
        problems.append(f"{path}.url: {url!r} is not an http:// or https:// URL")
    if not problems and actor is None and url is None:
        problems.append(f"{path}: names neither an actor nor a url")
    return problems or OutcomeRoute(actor, queue, url)


def caps_conflicts(rule: RetryRule, caps: tuple[Caps, ...], path: str) -> list[str]:
    """The retries of `rule` that `caps` would hold when they are due, as problems.

    The calls of one contact and its retries are at 0, d1, d1+d2, ... (each retry counted from
    the previous call's end; taking the calls as instant is the most favourable case). A retry
    that the caps refuse then is never made when the rule says: held until the caps allow, or,
    with an expiry, never.
    """
    problems: list[str] = []
    if not rule.enabled:
        return problems
    calls = [0.0]
    for index, delay in enumerate(rule.delays):
        at = calls[-1] + delay
        for cap in caps:
            until = cap.next_allowed(calls, at)
            if until is not None:
                problems.append(
                    f"{path}.delays[{index}]: retry {index + 1} is due {format_duration(int(at))} "
                    f"after the first call, but the caps ({cap.describe()}) never allow a call "
                    f"then (not before {format_duration(int(until))}): shorten the retries or "
                    "loosen the caps"
                )
                break
        calls.append(at)
    return problems


def _words(value: Any, path: str, problems: list[str]) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{path}: must be a list of non-empty strings")
        return set()
    return {v.strip().lower() for v in value}


def _is_name(value: str) -> bool:
    return 0 < len(value) <= 100 and all(ch.isalnum() or ch in "_.-" for ch in value)


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
