"""What the `levers_outcome` actor does with one verified call-ended event.

    record it (worker.outcomes)  ->  count it  ->  retry the call? (worker.retries)
                                                ->  tell the producer? (worker.notify)

Every step is idempotent, so a redelivered message is harmless: the record is keyed on the
contact id and the event id, a retry and a notification each on a marker set together with
their message. The steps after the record run for a duplicate too, so a message whose worker
died after recording still schedules its retry and its notification.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from worker.contacts import parse_batch_key
from worker.events import MALFORMED, NO_CORRELATION, SECOND_EVENT, UNKNOWN_BATCH, delivery_label
from worker.notify import Notifier
from worker.outcome_metrics import OutcomeMetrics
from worker.outcomes import OutcomeStore, Recorded
from worker.policy.policy import Rule
from worker.retries import RetryDecision, RetryScheduler

log = logging.getLogger("levers.outcomes")


class OutcomeHandler:
    def __init__(
        self,
        store: OutcomeStore,
        retries: RetryScheduler,
        notifier: Notifier,
        rule_for: Callable[[str | None], Rule],
        metrics: OutcomeMetrics,
    ) -> None:
        self.store = store
        self.retries = retries
        self.notifier = notifier
        self.rule_for = rule_for
        self.metrics = metrics

    def handle(self, event: dict[str, Any]) -> str:
        """Record and act on one event; returns what became of it (recorded, duplicate, or the
        reason it matched nothing)."""
        if event.get("problem") or not event.get("correlation"):
            return self._unmatched(event, MALFORMED if event.get("problem") else NO_CORRELATION)
        recorded = self.store.record(event)
        if recorded.status in (UNKNOWN_BATCH, SECOND_EVENT):
            return self._unmatched(event, recorded.status)
        contact_id = event["correlation"]["contact_id"]
        if recorded.status == "recorded":
            self._count(event, recorded)
        retry = self.retries.consider(contact_id, recorded.batch_key, event["outcome"])
        if retry.result is not None:
            self.metrics.retries.labels(retry.result).inc()
        if retry.to_json() is not None:
            self.store.note(contact_id, "retry", retry.to_json())
        route = self.rule_for(parse_batch_key(recorded.batch_key)[0]).outcomes
        if route.enabled:
            payload = self.payload(event, recorded, retry)
            for kind in self.notifier.notify(route, contact_id, payload):
                self.metrics.callbacks.labels(kind, "queued").inc()
        return recorded.status

    def payload(
        self, event: dict[str, Any], recorded: Recorded, retry: RetryDecision
    ) -> dict[str, Any]:
        """What a producer receives about one of its contacts' calls."""
        correlation = event["correlation"]
        template_id, update_existing = parse_batch_key(recorded.batch_key)
        original, number = self.retries.lineage(correlation["contact_id"])
        return {
            "type": "phone_call.ended",
            "contactId": correlation["contact_id"],
            "batchId": correlation["batch_id"],
            "aiSettingsTemplateId": template_id,
            "updateExisting": update_existing,
            "numberToCall": event.get("numberTo"),
            "metadata": event.get("metadata"),
            "endedAt": event.get("sentAt"),
            "outcome": event["outcome"],
            "retryOf": {"contactId": original, "number": number} if number else None,
            "retry": retry.to_json(),
        }

    def _count(self, event: dict[str, Any], recorded: Recorded) -> None:
        outcome = event["outcome"]
        self.metrics.calls_ended.labels(delivery_label(outcome), recorded.call_output).inc()
        self.metrics.ended_reasons.labels(recorded.ended_reason).inc()
        accepted_ms = event["correlation"].get("at")
        if isinstance(accepted_ms, int | float) and not isinstance(accepted_ms, bool):
            self.metrics.call_end_seconds.observe(max(0.0, event["sentAt"] - accepted_ms / 1000))
        if recorded.settled:
            self.metrics.unknown.labels("settled").inc()
            log.info(
                "unknown outcome settled by its call-ended event: the contact was called",
                extra={"dead_letter": recorded.settled},
            )

    def _unmatched(self, event: dict[str, Any], reason: str) -> str:
        if self.store.keep_unmatched(event, reason):
            self.metrics.unmatched.labels(reason).inc()
            log.warning(
                "call-ended event matches no contact",
                extra={"event_id": event["eventId"], "reason": reason},
            )
        return reason
