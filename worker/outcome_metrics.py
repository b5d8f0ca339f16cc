"""Prometheus metrics of call outcomes, counted by the worker processes that handle them.

Created on the worker's registry (multiprocess mode, like `worker.metrics`). Labels are
bounded: `delivery_status` is pass, fail or other; `call_output` and `ended_reason` are the
first LEVERS_METRICS_MAX_OUTCOME_LABELS words seen (kept in Redis, so every process and
replica agrees), then `other`, plus `none` and `structured`; the rest are fixed sets.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from worker.events import UNMATCHED_REASONS
from worker.keys import Keys
from worker.retries import RETRY_RESULTS

# From acceptance to the call's end: minutes to hours, a day at most worth telling apart.
CALL_END_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
CALLBACK_RESULTS = ("queued", "delivered", "failed", "dead")


class OutcomeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.calls_ended = Counter(
            "levers_calls_ended",
            "Calls Levers reported ended (first event per contact), by deliveryStatus and "
            "callOutput.",
            ["delivery_status", "call_output"],
            registry=r,
        )
        self.ended_reasons = Counter(
            "levers_calls_ended_by_reason",
            "Calls Levers reported ended, by endedReason.",
            ["ended_reason"],
            registry=r,
        )
        self.call_end_seconds = Histogram(
            "levers_call_end_seconds",
            "From a contact's acceptance (its append) to the end of its call (the webhook's "
            "timestamp).",
            buckets=CALL_END_BUCKETS,
            registry=r,
        )
        self.unmatched = Counter(
            "levers_outcome_events_unmatched",
            "Verified call-ended events that match no contact, by reason (kept for a while).",
            ["reason"],
            registry=r,
        )
        self.unknown = Counter(
            "levers_unknown_outcomes",
            "Unknown outcomes resolved: settled (the call-ended event came: the contact was "
            "called) or resent (no event after LEVERS_OUTCOME_GRACE_SECONDS, after_grace).",
            ["result"],
            registry=r,
        )
        self.retries = Counter(
            "levers_retries",
            "Policy retries of calls that did not reach the person, by result: scheduled, "
            "exhausted (all of the rule's retries made), no_contact, refused.",
            ["result"],
            registry=r,
        )
        self.callbacks = Counter(
            "levers_outcome_callbacks",
            "Outcomes handed to producers, by kind (actor, http) and result: queued, "
            "delivered (2xx), failed (an attempt; retried), dead (given up).",
            ["kind", "result"],
            registry=r,
        )
        # Every series a dashboard shows exists from the start, at 0.
        for status in ("pass", "fail", "other"):
            self.calls_ended.labels(status, "none")
        self.ended_reasons.labels("none")
        for reason in UNMATCHED_REASONS:
            self.unmatched.labels(reason)
        for result in ("settled", "resent"):
            self.unknown.labels(result)
        for result in RETRY_RESULTS:
            self.retries.labels(result)
        for kind in ("actor", "http"):
            self.callbacks.labels(kind, "queued")
        for result in CALLBACK_RESULTS[1:]:
            self.callbacks.labels("http", result)


class OutcomeStateCollector:
    """Gauges of the outcomes room read from Redis at scrape time (the worker's endpoint):
    every replica reports the same values, so dashboards take the max."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    def collect(self) -> Iterator[Metric]:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(self.keys.callbacks_dead_index)
            pipe.zcard(self.keys.unmatched_index)
            pipe.zcard(self.keys.unknown_watch)
            dead, unmatched, watched = pipe.execute()
        except redis.RedisError:
            return  # the absence of the series is the signal, as for the pipeline's gauges
        yield GaugeMetricFamily(
            "levers_callback_dead_letters_held",
            "Outcome callbacks given up after their last attempt, kept for an operator.",
            value=dead,
        )
        yield GaugeMetricFamily(
            "levers_outcome_events_unmatched_held",
            "Call-ended events that matched no contact, kept for LEVERS_OUTCOME_RETENTION_SECONDS.",
            value=unmatched,
        )
        yield GaugeMetricFamily(
            "levers_unknown_outcomes_watched",
            "unknown_outcome dead letters waiting for their call-ended event or grace period.",
            value=watched,
        )
