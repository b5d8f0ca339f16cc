"""The sender: one attempt to deliver one batch, and what to do with the answer.

    claim the batch (lease) -> wait for the pacer -> POST -> classify -> record the outcome

Outcomes:
  2xx                          sent
  429 502 503 504, 401 after a re-authentication, auth endpoint failing, connection refused
                               retry later (at least Retry-After; a 429 also pauses every sender
                               and does not count as an attempt), up to LEVERS_MAX_SEND_RETRIES
                               attempts or LEVERS_MAX_RETRY_SECONDS, then dead letters as
                               `retries_exhausted`
  422                          the contacts Levers names go to dead letters as `invalid_contact`,
                               the rest is sent as a new batch; when it names none we can place,
                               each half becomes a batch of its own, down to the bad contact
  no answer after the request was written (read timeout, connection dropped), or a 500
                               dead letters as `unknown_outcome`: not resent, Levers may be
                               calling these people already (LEVERS_RESEND_UNKNOWN=true resends)
  other 4xx                    dead letters as `rejected_by_levers` with status and body

A batch whose previous attempt died in `sending` (its lease ran out) is an unknown outcome too;
one that died before its request left (`claimed`) is simply claimed again.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from worker.contacts import RESERVED_METADATA_KEY, mask_number, parse_batch_key
from worker.errors import LeversAuthError, LeversTransportError
from worker.levers import LeversClient, bulk_body
from worker.metrics import Metrics, status_class
from worker.ratelimit import Pacer, Slots
from worker.store import BatchStore, Claim, Clock

log = logging.getLogger("levers.sender")

# Levers echoes metadata back in its phone_call.ended webhook as requestMetadata.
CORRELATION_KEY = RESERVED_METADATA_KEY

UNKNOWN_OUTCOME = "unknown_outcome"
RETRIES_EXHAUSTED = "retries_exhausted"
REJECTED_BY_LEVERS = "rejected_by_levers"
INVALID_CONTACT = "invalid_contact"
DEAD_LETTER_REASONS = (UNKNOWN_OUTCOME, RETRIES_EXHAUSTED, REJECTED_BY_LEVERS, INVALID_CONTACT)

# Statuses after which Levers surely did not act on the request. 401 is here because the client
# already re-authenticated once: credentials being rotated are no reason to drop contacts.
RETRYABLE_STATUSES = frozenset({401, 429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 8
    max_elapsed_seconds: float = 3600.0
    base_seconds: float = 1.0
    max_seconds: float = 300.0

    def backoff(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Exponential backoff with full jitter, never shorter than the server's Retry-After."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return max(retry_after or 0.0, rng.uniform(0, ceiling))


@dataclass(frozen=True)
class SendResult:
    outcome: str  # sent | retry | dead | split | skipped
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
        enqueue_batch: Callable[[str], None] | None = None,
        slots: Slots | None = None,
        resend_unknown: bool = False,
        clock: Clock = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.pacer = pacer
        self.client = client
        self.metrics = metrics
        self.policy = policy
        self.enqueue_batch = enqueue_batch
        self.slots = slots
        self.resend_unknown = resend_unknown
        self.clock = clock
        self.rng = rng or random.Random()

    def send(self, hint: str) -> SendResult:
        """Use one send token: the batch sent is chosen round robin across batch keys (see
        `BatchStore.pick`); `hint` is the batch the token was made for."""
        owner = uuid.uuid4().hex
        claim = self.store.pick(hint, owner, resend_unknown=self.resend_unknown)
        batch_id = claim.batch_id or hint
        if claim.verdict == "unknown":
            return self._dead(batch_id, "", claim, UNKNOWN_OUTCOME, None, "attempt died in flight")
        if claim.verdict != "claimed":
            return SendResult("skipped", batch_id, claim.verdict)
        try:
            template_id, update_existing = parse_batch_key(claim.batch_key)
            body = bulk_body(correlate(claim, batch_id), template_id, update_existing)
            waited = self.pacer.acquire(len(claim.contacts))
            if self.slots is not None:
                waited += self.slots.acquire(owner)
            self.metrics.rate_wait.observe(waited)
            if not self.store.begin(batch_id, owner):
                self._release(owner)
                return SendResult("skipped", batch_id, "lease lost before sending")
            now = self.clock()
            for appended in claim.appended_at:
                self.metrics.contact_wait.observe(max(0.0, now - appended))
        except Exception as exc:
            # Nothing was sent: hand the batch back so the next attempt need not wait for the
            # lease to run out, then let dramatiq retry the message.
            with contextlib.suppress(Exception):
                self._release(owner)
            with contextlib.suppress(Exception):
                self.store.finish(
                    batch_id,
                    owner,
                    "retry",
                    detail=repr(exc),
                    throttled=True,
                    batch_key=claim.batch_key,
                )
            raise

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
        finally:
            with contextlib.suppress(Exception):  # a lost release only waits out its lease
                self._release(owner)
        latency = time.monotonic() - started
        self.metrics.request_seconds.observe(latency)
        self.pacer.observe(response.status_code, latency)
        return self._classify(batch_id, owner, claim, response, latency)

    def _release(self, owner: str) -> None:
        if self.slots is not None:
            self.slots.release(owner)

    def _classify(
        self, batch_id: str, owner: str, claim: Claim, response: httpx.Response, latency: float
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
                    "duration_ms": round(latency * 1000),
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
                self.metrics.pauses.inc()
            return self._retry(batch_id, owner, claim, status, detail, str(status), retry_after)
        if status == 422:
            return self._split(batch_id, owner, claim, response)
        if status >= 500 and not self.resend_unknown:
            # A 500 can come after Levers acted on part of the request: not safe to resend.
            return self._dead(batch_id, owner, claim, UNKNOWN_OUTCOME, status, detail)
        if status >= 500:
            return self._retry(batch_id, owner, claim, status, detail, str(status))
        return self._dead(batch_id, owner, claim, REJECTED_BY_LEVERS, status, detail)

    def _split(
        self, batch_id: str, owner: str, claim: Claim, response: httpx.Response
    ) -> SendResult:
        """A 422: dead-letter the contacts Levers named and send the rest as a new batch; if it
        named none we can place, send each half as its own batch to isolate the bad ones."""
        contacts = claim.contacts
        refused = refused_contacts(response, len(contacts))
        letters: list[tuple[str, dict[str, Any]]] = []
        if refused:
            children = [[c for i, c in enumerate(contacts) if i not in refused]]
            letters = [
                self._letter(batch_id, claim, i, INVALID_CONTACT, 422, refused[i])
                for i in sorted(refused)
            ]
        elif len(contacts) > 1:
            middle = len(contacts) // 2
            children = [list(contacts[:middle]), list(contacts[middle:])]
        else:
            letters = [
                self._letter(batch_id, claim, 0, INVALID_CONTACT, 422, _body_excerpt(response))
            ]
            children = []
        children = [child for child in children if child]
        child_ids = self.store.finish(
            batch_id,
            owner,
            "split",
            status=422,
            detail=_body_excerpt(response),
            batch_key=claim.batch_key,
            children=children,
            dead_letters=letters,
        )
        if child_ids is None:
            return SendResult("skipped", batch_id, "lease lost")
        if letters:
            self.metrics.dead_letters.labels(INVALID_CONTACT).inc(len(letters))
        log.warning(
            "batch refused by Levers (422), split",
            extra={
                "batch_id": batch_id,
                "batch_key": claim.batch_key,
                "refused": len(letters),
                "children": ",".join(child_ids),
            },
        )
        for child in child_ids:
            if self.enqueue_batch is not None:
                self.enqueue_batch(child)
        return SendResult(
            "split", batch_id, f"{len(letters)} refused, {len(child_ids)} new batches"
        )

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
        throttled = status == 429
        elapsed = self.clock() - claim.first_attempt_at
        if not throttled and (
            claim.attempts > self.policy.max_retries or elapsed > self.policy.max_elapsed_seconds
        ):
            return self._dead(batch_id, owner, claim, RETRIES_EXHAUSTED, status, detail)
        delay = self.policy.backoff(claim.attempts, retry_after, self.rng)
        self.store.finish(
            batch_id,
            owner,
            "retry",
            status=status,
            detail=detail,
            retry_at=self.clock() + delay,
            throttled=throttled,
            batch_key=claim.batch_key,
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

    def _letter(
        self, batch_id: str, claim: Claim, index: int, reason: str, status: int | None, detail: str
    ) -> tuple[str, dict[str, Any]]:
        contact_id, entry = claim.contacts[index]
        return (
            f"{batch_id}:{index}",
            {
                "id": f"{batch_id}:{index}",
                "reason": reason,
                "batch_id": batch_id,
                "batch_key": claim.batch_key,
                "contact_id": contact_id,
                "contact": entry,
                "status": status,
                "detail": detail,
                "attempts": claim.attempts,
                "first_attempt_at": claim.first_attempt_at,
                "at": self.clock(),
            },
        )

    def _dead(
        self,
        batch_id: str,
        owner: str,
        claim: Claim,
        reason: str,
        status: int | None,
        detail: str,
    ) -> SendResult:
        letters = [
            self._letter(batch_id, claim, i, reason, status, detail)
            for i in range(len(claim.contacts))
        ]
        recorded = self.store.finish(
            batch_id, owner, "dead", status=status, detail=reason, dead_letters=letters
        )
        if recorded is None:
            return SendResult("skipped", batch_id, "lease lost")
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


def refused_contacts(response: httpx.Response, size: int) -> dict[int, str]:
    """Levers' 422 `detail[].loc` mapped to contact indexes -> message; {} when any error
    cannot be placed on one contact (then nobody can say which contacts are at fault)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return {}
    if not isinstance(detail, list) or not detail:
        return {}
    refused: dict[int, str] = {}
    for error in detail:
        loc = error.get("loc") if isinstance(error, dict) else None
        if not (
            isinstance(loc, list)
            and len(loc) >= 3
            and loc[:2] == ["body", "contacts"]
            and isinstance(loc[2], int)
            and 0 <= loc[2] < size
        ):
            return {}
        message = str(error.get("msg", "refused"))
        refused[loc[2]] = f"{refused[loc[2]]}; {message}" if loc[2] in refused else message
    return refused


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
