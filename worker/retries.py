"""Policy retries of calls that did not reach the person (`[retries]` in the calling policy).

    scheduler.consider(contact_id, batch_key, outcome) -> RetryDecision

A retry is a new contact message on the contacts queue, made through the producer's own code
(`Producer.enqueue_contacts`), so it goes through the aggregator like any contact: validated,
deduplicated, held for its `not_before` and its calling window, capped and suppressed. It
carries:

* `dedupe_key = retry:<original contact id>:<n>`: a key of its own, so the dedupe window of
  the number (which the first call took) lets it through, and the same for any second event
  of the same call, so it cannot be appended twice;
* `not_before = now + delays[n - 1]` (the shared clock).

A marker (`Keys.retry_scheduled`) is set in the same transaction as the message, so a
redelivered webhook, a second event, or a redelivered outcome message schedules nothing again.
The n-th retry of a contact records its lineage (`Keys.retry_lineage`), so its own outcome
schedules retry n + 1 of the same original, until the rule's delays run out.

A retry needs the contact as it was sent (names, prompt tags: Levers echoes only metadata):
the `Ledger` keeps a copy of each contact the sender sends for a template with retry rules, for
LEVERS_OUTCOME_RETENTION_SECONDS, and only for those templates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from worker.contacts import parse_batch_key
from worker.deadletters import replay_row
from worker.errors import BacklogFullError
from worker.keys import Keys
from worker.once import run_once
from worker.policy.outcomes import RetryRule
from worker.scripting import Clock, as_text, compact, redis_now

if TYPE_CHECKING:
    from producers.api import Producer
    from worker.outbox import Claim

log = logging.getLogger("levers.retries")

# Results (stable: the `result` label of levers_retries_total).
SCHEDULED = "scheduled"
EXHAUSTED = "exhausted"  # the rule wanted one, but every retry of it was made
NO_CONTACT = "no_contact"  # the copy of the contact is gone (retention), or was never kept
REFUSED = "refused"  # the producer's validation refused the retry (a changed rule, a bug)
RETRY_RESULTS = (SCHEDULED, EXHAUSTED, NO_CONTACT, REFUSED)


class RetryLater(Exception):
    """Redis is too full to take the retry now: the outcome message is tried again later."""


class _Refused(Exception):
    """The producer's validation refused the retry's row."""


class Ledger:
    """Copies of contacts as they were sent, for the templates whose policy retries calls."""

    def __init__(
        self, client: redis.Redis, keys: Keys, ttl_seconds: int, wanted: Callable[[str], bool]
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self.wanted = wanted  # batch key -> does its template retry calls?

    def remember(self, claim: Claim) -> None:
        """Keep the claimed batch's contacts (one round trip), if its template retries calls."""
        if not self.wanted(claim.batch_key):
            return
        pipe = self.client.pipeline(transaction=False)
        for contact_id, entry in claim.contacts:
            record = compact({"batch_key": claim.batch_key, "contact": entry})
            pipe.set(self.keys.sent_contact(contact_id), record, ex=self.ttl_seconds)
        pipe.execute()

    def get(self, contact_id: str) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.sent_contact(contact_id))
        return None if raw is None else dict(json.loads(raw))


@dataclass(frozen=True)
class RetryDecision:
    result: str | None  # one of RETRY_RESULTS; None: no retry wanted, or scheduled before
    number: int = 0  # the retry's number (1 = the first retry)
    contact_id: str = ""  # the retry's own contact id
    not_before: float = 0.0
    dedupe_key: str = ""

    def to_json(self) -> dict[str, Any] | None:
        if self.result != SCHEDULED:
            return None
        return {
            "number": self.number,
            "contactId": self.contact_id,
            "notBefore": self.not_before,
            "dedupeKey": self.dedupe_key,
        }


class RetryScheduler:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        producer: Producer,
        ledger: Ledger,
        rule_for: Callable[[str | None], RetryRule],
        retention_seconds: int,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.producer = producer
        self.ledger = ledger
        self.rule_for = rule_for  # template id -> its retry rule
        self.retention_seconds = retention_seconds
        self.clock = clock

    def lineage(self, contact_id: str) -> tuple[str, int]:
        """(original contact id, n): this contact is the n-th retry of the original (0: none)."""
        raw = self.client.get(self.keys.retry_lineage(contact_id))
        if raw is None:
            return contact_id, 0
        number, _, original = as_text(raw).partition(":")
        return original, int(number)

    def consider(
        self, contact_id: str, batch_key: str, outcome: Mapping[str, Any]
    ) -> RetryDecision:
        """Schedule the next retry of this contact's call if its template's rule wants one.
        Raises RetryLater (try the outcome message again) when Redis is too full for it."""
        template_id, _ = parse_batch_key(batch_key)
        rule = self.rule_for(template_id)
        if not (rule.enabled and rule.wants(outcome)):
            return RetryDecision(None)
        original, previous = self.lineage(contact_id)
        number = previous + 1
        delay = rule.delay(number)
        if delay is None:
            return RetryDecision(EXHAUSTED, number)
        marker = self.keys.retry_scheduled(original, number)
        if self.client.exists(marker):
            return RetryDecision(None, number)
        sent = self.ledger.get(contact_id)
        if sent is None:
            log.warning(
                "retry wanted, but the contact as sent is no longer kept",
                extra={"contact_id": contact_id, "retry": number},
            )
            return RetryDecision(NO_CONTACT, number)
        not_before = redis_now(self.client, self.clock) + delay
        dedupe_key = f"retry:{original}:{number}"
        row = replay_row({"id": "", "batch_key": sent["batch_key"], "contact": sent["contact"]})
        row.update(dedupe_key=dedupe_key, not_before=not_before)
        ttl = self.retention_seconds + sum(rule.delays)
        made: list[str] = []

        def stage(pipe: redis.client.Pipeline) -> None:
            result = self.producer.enqueue_contacts([row], pipe=pipe)
            if result.rejected:
                # Nothing of the transaction runs: neither the marker nor a message.
                rejection = result.rejected[0]
                if rejection.reason == BacklogFullError.reason:
                    raise RetryLater(rejection.message)
                raise _Refused(rejection.reason)
            new_id = result.accepted[0][1]
            made.append(new_id)
            pipe.set(marker, new_id, ex=ttl)
            pipe.set(self.keys.retry_lineage(new_id), f"{number}:{original}", ex=ttl)

        try:
            done = run_once(self.client, marker, "", ttl, stage)
        except _Refused as exc:
            log.error(
                "retry refused by validation",
                extra={"contact_id": contact_id, "retry": number, "reason": str(exc)},
            )
            return RetryDecision(REFUSED, number)
        if not done or not made:
            return RetryDecision(None, number)
        log.info(
            "retry scheduled",
            extra={"contact_id": contact_id, "retry": number, "retry_contact_id": made[0]},
        )
        return RetryDecision(SCHEDULED, number, made[0], not_before, dedupe_key)
