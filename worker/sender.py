"""The sender: one attempt to deliver one batch, and what Levers' answer means.

    pick a batch (lease) -> wait for the pacer -> mark it sending -> POST -> an outcome

The outbox (`worker.outbox`) owns the batch before and after; the sender only turns an answer
into one outcome value, which the outbox records:

  2xx                          Sent
  429 502 503 504, 401 after a re-authentication, auth endpoint failing, connection refused
                               Retry (at least Retry-After; a 429 also pauses every sender
                               and does not count as an attempt), up to LEVERS_MAX_SEND_RETRIES
                               attempts or LEVERS_MAX_RETRY_SECONDS, then Dead
                               `retries_exhausted`
  422                          Split: the contacts Levers names are dead-lettered as
                               `invalid_contact`, the rest sent as a new batch; when it names
                               none we can place, each half becomes a batch of its own, down to
                               the bad contact
  no answer after the request was written (read timeout, connection dropped), or a 500
                               Dead `unknown_outcome`: not resent, Levers may be calling these
                               people already (LEVERS_RESEND_UNKNOWN=true resends)
  other 4xx                    Dead `rejected_by_levers` with status and body

A batch whose previous attempt died in `sending` (its lease ran out) is an unknown outcome too;
one that died before its request left (`claimed`) is simply claimed again.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import redis

from worker.contacts import RESERVED_METADATA_KEY, mask_number, parse_batch_key
from worker.deadletters import (
    CANCELLED,
    FREQUENCY_CAPPED,
    INVALID_CONTACT,
    REJECTED_BY_LEVERS,
    RETRIES_EXHAUSTED,
    SUPPRESSED,
    UNKNOWN_OUTCOME,
)
from worker.eligibility import (
    NO_CAPS_RULE,
    SEND_NOW,
    CapsRule,
    Drop,
    Eligibility,
    Hold,
    Schedule,
    Send,
    Verdict,
)
from worker.errors import LeversAuthError, LeversTransportError, NotReplicatedError
from worker.last_error import LastError
from worker.levers import LeversClient, bulk_body
from worker.metrics import Metrics, status_class
from worker.outbox import Begun, Claim, Dead, Gate, Outbox, Outcome, Retry, Sent, Split
from worker.ratelimit import Pacer, Slots
from worker.retries import Ledger

log = logging.getLogger("levers.sender")

# Levers echoes metadata back in its phone_call.ended webhook as requestMetadata.
CORRELATION_KEY = RESERVED_METADATA_KEY

# A batch of a paused template looks again this often (its resume hands it a token at once).
PAUSED_RECHECK_SECONDS = 60.0

# Statuses after which Levers surely did not act on the request. 401 is here because the client
# already re-authenticated once: credentials being rotated are no reason to drop contacts.
RETRYABLE_STATUSES = frozenset({401, 429, 502, 503, 504})

# A batch not sent because too few replicas confirmed `sending` is tried again after this, s.
REPLICATION_RETRY_SECONDS = 1.0


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

    def exhausted(self, claim: Claim) -> bool:
        return claim.attempts > self.max_retries or claim.elapsed > self.max_elapsed_seconds


@dataclass(frozen=True)
class Decided:
    """What the sender decided for each contact of a claimed batch, and when."""

    now: float  # seconds, the shared clock
    paused: bool
    verdicts: list[Verdict]
    caps: CapsRule


@dataclass(frozen=True)
class SendResult:
    outcome: str  # sent | retry | dead | split | skipped
    batch_id: str
    detail: str = ""
    retry_in: float = 0.0


class Sender:
    def __init__(
        self,
        outbox: Outbox,
        pacer: Pacer,
        client: LeversClient,
        metrics: Metrics,
        policy: RetryPolicy = RetryPolicy(),
        *,
        slots: Slots | None = None,
        resend_unknown: bool = False,
        rng: random.Random | None = None,
        eligibility: Eligibility | None = None,
        ledger: Ledger | None = None,
        last_error: LastError | None = None,
    ) -> None:
        """Without `eligibility` no contact is held back at send time (no calling policy)."""
        self.outbox = outbox
        self.pacer = pacer
        self.client = client
        self.metrics = metrics
        self.policy = policy
        self.slots = slots
        self.resend_unknown = resend_unknown
        self.rng = rng or random.Random()
        self.eligibility = eligibility
        self.ledger = ledger  # keeps the contacts of templates that retry calls
        self.last_error = last_error  # the latest failure, for the console

    def send(self, hint: str) -> SendResult:
        """Use one send token: the batch sent is chosen round robin across batch keys (see
        `Outbox.pick`); `hint` is the batch the token was made for."""
        owner = uuid.uuid4().hex
        claim = self.outbox.pick(hint, owner, resend_unknown=self.resend_unknown)
        if claim.verdict == "unknown":
            return self._record(claim, "", Dead(UNKNOWN_OUTCOME, None, "attempt died in flight"))
        if claim.verdict != "claimed":
            return SendResult("skipped", claim.batch_id, claim.verdict)
        # Everything that can be done before the rate-limit slot is done before it: each
        # contact decided (the gates and the calling policy), the token (perhaps an auth round
        # trip), the body encoded. Between the slot and the request there is only begin.lua,
        # which checks those decisions still hold as it marks the batch sending, so requests
        # leave at the spacing the pacer keeps.
        template_id, update_existing = parse_batch_key(claim.batch_key)
        try:
            decided = self._decide(claim)
            if decided.paused:
                # Its template is paused: the batch waits, ready, for the resume (which hands
                # it a token); nothing of it counts as an attempt.
                paused = Retry(
                    PAUSED_RECHECK_SECONDS, None, "paused", throttled=True, cause="paused"
                )
                return self._record(claim, owner, paused)
            going = claim.keep([i for i, v in enumerate(decided.verdicts) if isinstance(v, Send)])
            request = self.client.bulk_request(
                bulk_body(correlate(going), template_id, update_existing)
            )
        except LeversAuthError as exc:
            return self._record(claim, owner, self._retry(claim, None, str(exc), cause="auth"))
        try:
            if self.ledger is not None:
                self.ledger.remember(going)
            waited = 0.0
            if going.contacts:
                waited = self.pacer.acquire(len(going.contacts))
                if self.slots is not None:
                    waited += self.slots.acquire(owner)
            begun = self._begin(claim, owner, decided)
        except NotReplicatedError as exc:
            # `sending` is not on enough replicas: were a failover to lose it, the new primary
            # would send this batch again. So it is not sent now; it is handed back and tried
            # again, without counting as an attempt (worker/durability.py).
            with contextlib.suppress(Exception):
                self._release(owner)
            retry = Retry(REPLICATION_RETRY_SECONDS, None, str(exc), True, "replication")
            return self._record(claim, owner, retry)
        except Exception as exc:
            # Nothing was sent: hand the batch back so the next attempt need not wait for the
            # lease to run out. The batch's record decides when that is; this token is spent.
            with contextlib.suppress(Exception):
                self._release(owner)
            with contextlib.suppress(Exception):
                self.outbox.finish(
                    claim, owner, Retry(1.0, None, repr(exc), throttled=True, cause="error")
                )
            raise
        if begun.held:
            self.metrics.held_at_send.inc(begun.held)
        for reason in begun.dropped:
            self.metrics.dead_letters.labels(reason).inc()
        if begun.code == "paused":  # paused while it waited for its slot
            self._release(owner)
            paused = Retry(PAUSED_RECHECK_SECONDS, None, "paused", throttled=True, cause="paused")
            return self._record(claim, owner, paused)
        if begun.code != "send":
            self._release(owner)
            what = "lease lost before sending" if begun.code == "lost" else "every contact held"
            return SendResult("skipped", claim.batch_id, what)
        if begun.claim.contacts != going.contacts:
            # Decided again at the slot (something changed while it waited): send what goes.
            request = self.client.bulk_request(
                bulk_body(correlate(begun.claim), template_id, update_existing)
            )
        claim = begun.claim
        began = begun.now

        response = None
        started = time.monotonic()
        try:
            response = self.client.send(request)
        except LeversTransportError as exc:
            outcome: Outcome = (
                Dead(UNKNOWN_OUTCOME, None, str(exc))
                if exc.written and not self.resend_unknown
                else self._retry(claim, None, str(exc), cause="connection")
            )
        except LeversAuthError as exc:
            outcome = self._retry(claim, None, str(exc), cause="auth")
        finally:
            with contextlib.suppress(Exception):  # a lost release only waits out its lease
                self._release(owner)
        self.metrics.rate_wait.observe(waited)
        for appended in claim.appended_at:
            self.metrics.contact_wait.observe(max(0.0, began - appended))
        if response is None:
            self.metrics.requests.labels("error").inc()
            return self._record(claim, owner, outcome)
        latency = time.monotonic() - started
        self.metrics.requests.labels(status_class(response.status_code)).inc()
        self.metrics.request_seconds.observe(latency)
        self.pacer.observe(response.status_code, latency)
        return self._record(claim, owner, self.classify(claim, response), latency)

    def _note_failure(self, claim: Claim, outcome: Outcome) -> None:
        """Keep the latest failure for operators (a pause or a replication wait is none)."""
        if self.last_error is None or isinstance(outcome, Sent):
            return
        if isinstance(outcome, Retry) and outcome.cause in ("paused", "replication"):
            return
        cause = outcome.cause if isinstance(outcome, Retry) else outcome.reason
        with contextlib.suppress(redis.RedisError):  # a lost note loses no contact
            self.last_error.note(
                batch_id=claim.batch_id,
                batch_key=claim.batch_key,
                cause=cause,
                status=outcome.status,
                detail=outcome.detail,
            )

    def classify(self, claim: Claim, response: httpx.Response) -> Outcome:
        """What Levers' answer to this batch means (see the module docstring)."""
        status = response.status_code
        if 200 <= status < 300:
            return Sent(status)
        detail = _body_excerpt(response)
        if status in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), response.headers.get("Date")
            )
            if status == 429:
                self.pacer.pause(
                    retry_after if retry_after is not None else self.policy.base_seconds
                )
                self.metrics.pauses.inc()
            return self._retry(claim, status, detail, retry_after)
        if status == 422:
            return split_422(response, len(claim.contacts))
        if status >= 500 and not self.resend_unknown:
            # A 500 can come after Levers acted on part of the request: not safe to resend.
            return Dead(UNKNOWN_OUTCOME, status, detail)
        if status >= 500:
            return self._retry(claim, status, detail)
        return Dead(REJECTED_BY_LEVERS, status, detail)

    def _retry(
        self,
        claim: Claim,
        status: int | None,
        detail: str,
        retry_after: float | None = None,
        *,
        cause: str = "",
    ) -> Retry | Dead:
        throttled = status == 429
        if not throttled and self.policy.exhausted(claim):
            return Dead(RETRIES_EXHAUSTED, status, detail)
        delay = self.policy.backoff(claim.attempts, retry_after, self.rng)
        return Retry(delay, status, detail, throttled, cause or str(status))

    def _decide(self, claim: Claim) -> Decided:
        """Each contact decided now (the shared clock): its template paused or cancelled, its
        number suppressed, its caps used up, its calling window closed."""
        template_id, _ = parse_batch_key(claim.batch_key)
        caps = self.eligibility.caps(template_id) if self.eligibility else NO_CAPS_RULE
        gate = self.outbox.gate(claim, caps)
        verdicts = [
            self._verdict(entry["numberToCall"], template_id, schedule, gate, i, caps)
            for i, ((_, entry), schedule) in enumerate(
                zip(claim.contacts, claim.schedules, strict=True)
            )
        ]
        return Decided(gate.now, gate.paused, verdicts, caps)

    def _begin(self, claim: Claim, owner: str, decided: Decided) -> Begun:
        """Mark the batch `sending` with what the decisions let go; begin.lua checks they
        still hold, and when something changed in between (a window closed, a cap was used by
        another replica, the template was paused) the contacts are decided again."""
        for _ in range(5):
            if decided.paused:
                return Begun("paused", decided.now, claim)
            begun = self.outbox.begin(claim, owner, decided.verdicts, decided.now, decided.caps)
            if begun.code != "stale":
                return begun
            decided = self._decide(claim)
        raise RuntimeError("the batch's gates kept changing while it was being marked sending")

    def _verdict(
        self,
        number: str,
        template_id: str | None,
        schedule: Schedule,
        gate: Gate,
        index: int,
        caps: CapsRule,
    ) -> Verdict:
        if gate.cancelled:
            return Drop(CANCELLED, "its template was cancelled by an operator")
        if gate.suppressed[index]:
            return Drop(SUPPRESSED, "the number is on the do-not-call list")
        capped = gate.capped_until[index]
        if capped:
            if gate.capped_by:
                self.metrics.capped.labels(*caps.describe(gate.capped_by[index])).inc()
            expire = schedule.expire_ms
            if caps.dead_letter or (expire is not None and expire <= capped):
                return Drop(FREQUENCY_CAPPED, "its frequency cap is used up")
            return Hold(capped, FREQUENCY_CAPPED)
        if self.eligibility is None:
            return SEND_NOW
        return self.eligibility.verdict(number, template_id, schedule, gate.now)

    def _release(self, owner: str) -> None:
        if self.slots is not None:
            self.slots.release(owner)

    def _record(
        self, claim: Claim, owner: str, outcome: Outcome, latency: float = 0.0
    ) -> SendResult:
        """Hand the outcome to the outbox, then count and log it."""
        children = self.outbox.finish(claim, owner, outcome)
        if children is None:
            return SendResult("skipped", claim.batch_id, "lease lost")
        self._note_failure(claim, outcome)
        fields: dict[str, Any] = {
            "batch_id": claim.batch_id,
            "batch_key": claim.batch_key,
            "attempt": claim.attempts,
        }
        if isinstance(outcome, Sent):
            self.metrics.contacts_sent.inc(len(claim.contacts))
            log.info(
                "batch sent",
                extra={
                    **fields,
                    "contacts": len(claim.contacts),
                    "status": outcome.status,
                    "duration_ms": round(latency * 1000),
                },
            )
            return SendResult("sent", claim.batch_id)
        if isinstance(outcome, Retry):
            self.metrics.retries.labels(outcome.cause).inc()
            log.warning(
                "batch send failed, will retry",
                extra={
                    **fields,
                    "status": outcome.status,
                    "retry_in": round(outcome.delay_seconds, 3),
                    "detail": outcome.detail[:200],
                },
            )
            return SendResult("retry", claim.batch_id, outcome.detail, outcome.delay_seconds)
        if isinstance(outcome, Split):
            if outcome.refused:
                self.metrics.dead_letters.labels(outcome.reason).inc(len(outcome.refused))
            log.warning(
                "batch refused by Levers (422), split",
                extra={**fields, "refused": len(outcome.refused), "children": ",".join(children)},
            )
            return SendResult(
                "split", claim.batch_id, f"{len(outcome.refused)} refused, {len(children)} new"
            )
        self.metrics.dead_letters.labels(outcome.reason).inc(len(claim.contacts))
        log.error(
            "batch dead-lettered",
            extra={
                **fields,
                "reason": outcome.reason,
                "contacts": len(claim.contacts),
                "status": outcome.status,
                "first_number": mask_number(claim.contacts[0][1]["numberToCall"])
                if claim.contacts
                else "",
            },
        )
        return SendResult("dead", claim.batch_id, outcome.reason)


def split_422(response: httpx.Response, size: int) -> Split:
    """A 422: dead-letter the contacts Levers named and send the rest as a new batch; if it
    named none we can place, send each half as its own batch to isolate the bad ones."""
    detail = _body_excerpt(response)
    refused = refused_contacts(response, size)
    if refused:
        rest = tuple(i for i in range(size) if i not in refused)
        return Split(422, detail, INVALID_CONTACT, refused, (rest,))
    if size > 1:
        middle = size // 2
        return Split(
            422, detail, INVALID_CONTACT, {}, (tuple(range(middle)), tuple(range(middle, size)))
        )
    return Split(422, detail, INVALID_CONTACT, {0: detail})


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


def correlate(claim: Claim) -> Sequence[dict[str, Any]]:
    """Each contact with our correlation entry added to its metadata (the producer's keys kept).

    Levers echoes it in the call-ended webhook: `index` names the contact's dead letter should
    this request's outcome be unknown (`<batch_id>:<index>`), `at` (ms, when it was appended)
    gives the time from acceptance to the call's end (see worker/outcomes.py)."""
    out = []
    for index, (contact_id, entry) in enumerate(claim.contacts):
        metadata = dict(entry.get("metadata") or {})
        correlation: dict[str, Any] = {
            "batch_id": claim.batch_id,
            "contact_id": contact_id,
            "index": index,
        }
        if index < len(claim.appended_at):
            correlation["at"] = round(claim.appended_at[index] * 1000)
        metadata[CORRELATION_KEY] = correlation
        out.append({**entry, "metadata": metadata})
    return out


def parse_retry_after(value: str | None, date: str | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta seconds, or an HTTP date measured
    against the response's own `Date` header (so no host clock is involved); a date without
    a `Date` header to measure it against is read against this host's clock."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        until = parsedate_to_datetime(value).timestamp()
        now = parsedate_to_datetime(date).timestamp() if date else time.time()
    except (TypeError, ValueError):
        return None
    return max(0.0, until - now)


def _body_excerpt(response: httpx.Response, limit: int = 2000) -> str:
    try:
        return response.text[:limit]
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return f"<{len(response.content)} bytes>"
