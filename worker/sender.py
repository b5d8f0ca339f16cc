"""The sender: one attempt to deliver one batch, and what to do with the answer.

    claim the batch (lease) -> wait for the pacer -> POST -> classify -> record the outcome

Outcomes:
  2xx                                   sent
  429 / 5xx / auth failure / connection refused before sending
                                        retry later (at least Retry-After), up to max retries,
                                        then dead letters as `retries_exhausted`
  no answer after the request was sent  dead letters as `unknown_outcome` (not resent: Levers
                                        may be calling these people already)
  other 4xx                             dead letters as `rejected_by_levers` with status and body

A batch whose previous attempt died in flight (its lease ran out) is an unknown outcome too.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from worker.contacts import RESERVED_METADATA_KEY, mask_number, parse_batch_key
from worker.errors import LeversAuthError, LeversTransportError
from worker.levers import LeversClient, bulk_body
from worker.metrics import Metrics, status_class
from worker.ratelimit import Pacer
from worker.store import BatchStore, Claim, Clock

log = logging.getLogger("levers.sender")

# Levers echoes metadata back in its phone_call.ended webhook as requestMetadata.
CORRELATION_KEY = RESERVED_METADATA_KEY

UNKNOWN_OUTCOME = "unknown_outcome"
RETRIES_EXHAUSTED = "retries_exhausted"
REJECTED_BY_LEVERS = "rejected_by_levers"
DEAD_LETTER_REASONS = (UNKNOWN_OUTCOME, RETRIES_EXHAUSTED, REJECTED_BY_LEVERS)

# 401 is here because the client already re-authenticated once: the credentials are being
# rotated or the auth service is failing, neither a reason to drop the contacts.
RETRYABLE_STATUSES = frozenset({401, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 8
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Exponential backoff with full jitter, never shorter than the server's Retry-After."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return max(retry_after or 0.0, rng.uniform(0, ceiling))


@dataclass(frozen=True)
class SendResult:
    outcome: str  # sent | retry | dead | skipped
    batch_id: str
    detail: str = ""
    retry_in: float = 0.0


class Sender:
    def __init__(
        self,
        store: BatchStore,
        pacer: Pacer,
        client: LeversClient,
        metrics: Metrics,
        policy: RetryPolicy = RetryPolicy(),
        *,
        resend_unknown: bool = False,
        clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.pacer = pacer
        self.client = client
        self.metrics = metrics
        self.policy = policy
        self.resend_unknown = resend_unknown
        self.clock = clock
        self.rng = rng or random.Random()

    def send(self, batch_id: str) -> SendResult:
        owner = uuid.uuid4().hex
        claim = self.store.claim(batch_id, owner, resend_unknown=self.resend_unknown)
        if claim.verdict == "unknown":
            return self._dead(batch_id, "", claim, UNKNOWN_OUTCOME, None, "attempt died in flight")
        if claim.verdict != "claimed":
            return SendResult("skipped", batch_id, claim.verdict)

        template_id, update_existing = parse_batch_key(claim.batch_key)
        body = bulk_body(correlate(claim, batch_id), template_id, update_existing)
        waited = self.pacer.acquire(len(claim.contacts))
        self.metrics.rate_wait.observe(waited)

        started = time.monotonic()
        try:
            response = self.client.call_bulk(body)
        except LeversTransportError as exc:
            self.metrics.requests.labels("error").inc()
            if exc.written and not self.resend_unknown:
                return self._dead(batch_id, owner, claim, UNKNOWN_OUTCOME, None, str(exc))
            return self._retry(batch_id, owner, claim, None, str(exc), "connection")
        except LeversAuthError as exc:
            self.metrics.requests.labels("error").inc()
            return self._retry(batch_id, owner, claim, None, str(exc), "auth")
        self.metrics.request_seconds.observe(time.monotonic() - started)
        return self._classify(batch_id, owner, claim, response)

    def _classify(
        self, batch_id: str, owner: str, claim: Claim, response: httpx.Response
    ) -> SendResult:
        status = response.status_code
        self.metrics.requests.labels(status_class(status)).inc()
        if 200 <= status < 300:
            size = len(claim.contacts)
            self.store.finish(batch_id, owner, "sent", status=status, sent=size)
            self.metrics.contacts_sent.inc(size)
            log.info(
                "batch sent",
                extra={
                    "batch_id": batch_id,
                    "batch_key": claim.batch_key,
                    "contacts": size,
                    "status": status,
                    "attempt": claim.attempts,
                },
            )
            return SendResult("sent", batch_id)
        detail = _body_excerpt(response)
        if status in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock())
            if status == 429:
                self.pacer.pause(
                    retry_after if retry_after is not None else self.policy.base_seconds
                )
            return self._retry(batch_id, owner, claim, status, detail, str(status), retry_after)
        return self._dead(batch_id, owner, claim, REJECTED_BY_LEVERS, status, detail)

    def _retry(
        self,
        batch_id: str,
        owner: str,
        claim: Claim,
        status: int | None,
        detail: str,
        reason: str,
        retry_after: float | None = None,
    ) -> SendResult:
        if claim.attempts > self.policy.max_retries:
            return self._dead(batch_id, owner, claim, RETRIES_EXHAUSTED, status, detail)
        delay = self.policy.backoff(claim.attempts, retry_after, self.rng)
        self.store.finish(
            batch_id, owner, "retry", status=status, detail=detail, retry_at=self.clock() + delay
        )
        self.metrics.retries.labels(reason).inc()
        log.warning(
            "batch send failed, will retry",
            extra={
                "batch_id": batch_id,
                "batch_key": claim.batch_key,
                "status": status,
                "attempt": claim.attempts,
                "retry_in": round(delay, 3),
                "detail": detail[:200],
            },
        )
        return SendResult("retry", batch_id, detail, delay)

    def _dead(
        self,
        batch_id: str,
        owner: str,
        claim: Claim,
        reason: str,
        status: int | None,
        detail: str,
    ) -> SendResult:
        now = self.clock()
        letters = [
            (
                f"{batch_id}:{index}",
                {
                    "reason": reason,
                    "batch_id": batch_id,
                    "batch_key": claim.batch_key,
                    "contact_id": contact_id,
                    "contact": entry,
                    "status": status,
                    "detail": detail,
                    "attempts": claim.attempts,
                    "at": now,
                },
            )
            for index, (contact_id, entry) in enumerate(claim.contacts)
        ]
        if self.store.finish(
            batch_id, owner, "dead", status=status, detail=reason, dead_letters=letters
        ):
            self.metrics.dead_letters.labels(reason).inc(len(letters))
            log.error(
                "batch dead-lettered",
                extra={
                    "batch_id": batch_id,
                    "batch_key": claim.batch_key,
                    "reason": reason,
                    "contacts": len(letters),
                    "status": status,
                    "first_number": mask_number(claim.contacts[0][1]["numberToCall"])
                    if claim.contacts
                    else "",
                },
            )
        return SendResult("dead", batch_id, reason)


def correlate(claim: Claim, batch_id: str) -> Sequence[dict[str, Any]]:
    """Each contact with our correlation entry added to its metadata (the producer's keys kept)."""
    out = []
    for contact_id, entry in claim.contacts:
        metadata = dict(entry.get("metadata") or {})
        metadata[CORRELATION_KEY] = {"batch_id": batch_id, "contact_id": contact_id}
        out.append({**entry, "metadata": metadata})
    return out


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def _body_excerpt(response: httpx.Response, limit: int = 2000) -> str:
    try:
        return response.text[:limit]
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return f"<{len(response.content)} bytes>"
