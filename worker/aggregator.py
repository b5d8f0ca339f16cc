"""The aggregator (one contact message at a time) and the flusher (cuts batches by age).

Both are plain objects that the dramatiq actors and the worker process call; tests build them
directly. The aggregator appends to the pending buffers; a batch cut by size goes to the
outbox, which queues its send token. The flusher, one per worker process, cuts overdue
batches and runs the outbox's reaper (lost tokens, due retries, dead attempts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from worker.backlog import QueuedContacts
from worker.buffers import AppendResult, Buffers
from worker.contacts import DEFAULT_TEMPLATE, Contact, ContactRules, validate_contact
from worker.deadletters import CANCELLED, SUPPRESSED
from worker.eligibility import SEND_NOW, Drop, Eligibility, Hold, Schedule, Verdict
from worker.errors import ContactError, NotReplicatedError
from worker.holds import RELEASE_CHUNK, Holds
from worker.metrics import Metrics
from worker.outbox import Outbox
from worker.redis_health import RedisHealth, connection_error
from worker.rejects import Rejects
from worker.scripting import as_text
from worker.suppression import active

log = logging.getLogger("levers.aggregator")


class Aggregator:
    def __init__(
        self,
        buffers: Buffers,
        outbox: Outbox,
        rejects: Rejects,
        queued: QueuedContacts,
        metrics: Metrics,
        rules: ContactRules | None = None,
        eligibility: Eligibility | None = None,
    ) -> None:
        """Without `eligibility` every contact is sent on (no calling policy)."""
        self.buffers = buffers
        self.outbox = outbox
        self.rejects = rejects
        self.queued = queued
        self.metrics = metrics
        self.rules = rules or ContactRules()
        self.eligibility = eligibility

    def handle(self, payload: Any, message_id: str) -> list[AppendResult | None]:
        """Validate and append the contact a message carries, or each of a chunk of them.

        A single contact's id is the message id; the i-th contact of a chunk (a list, as
        `enqueue_contacts` sends) is `<message id>:<i>`. Returns one result per contact, None
        for a contact that was rejected (and recorded).
        """
        if isinstance(payload, list):
            items = [(item, f"{message_id}:{i}") for i, item in enumerate(payload)]
        else:
            items = [(payload, message_id)]
        valid: list[tuple[Contact, str, Verdict]] = []
        positions: list[int] = []
        results: list[AppendResult | None] = [None] * len(items)
        contacts = [(p, self._validate(item, cid), cid) for p, (item, cid) in enumerate(items)]
        checked = [(p, c, cid) for p, c, cid in contacts if c is not None]
        now, suppressed, cancelled = self._look_up([c.number for _, c, _ in checked], message_id)
        for position, contact, contact_id in checked:
            if contact.number in suppressed:
                self._reject(SUPPRESSED, "the number is on the do-not-call list", contact_id)
                continue
            if (contact.template_id or DEFAULT_TEMPLATE) in cancelled:
                verdict: Verdict = Drop(CANCELLED, "cancelled while it waited in the queue")
            else:
                verdict = self._verdict(contact, now)
            valid.append((contact, contact_id, verdict))
            positions.append(position)
        short: NotReplicatedError | None = None
        try:
            appended = self.buffers.append_many(valid)
        except NotReplicatedError as exc:  # made on the primary: go on with them, then fail
            short, appended = exc, exc.result  # type: ignore[assignment]
        for position, result, (_, _, verdict) in zip(positions, appended, valid, strict=True):
            results[position] = result
            self.metrics.contacts.labels(result.status).inc()
            if result.status in ("appended", "merged"):
                if isinstance(verdict, Hold):
                    self.metrics.held.labels(verdict.reason).inc()
                elif isinstance(verdict, Drop):
                    self.metrics.dead_letters.labels(verdict.reason).inc()
            if result.batch_id is not None:
                self.metrics.batches_cut.labels("size").inc()
                self.metrics.batch_size.observe(result.cut_size)
                self.outbox.queue(result.batch_id)
        if short is not None:
            # Not confirmed by enough replicas (LEVERS_REDIS_MIN_REPLICAS): dramatiq delivers
            # the message again (its contacts are then `redelivered`) until a delivery is.
            raise short
        # Only once every contact of the message is in a buffer (or refused): a failure above
        # leaves the message counted as queued, and dramatiq delivers it again.
        self.queued.settle(message_id)
        return results

    def _look_up(self, numbers: list[str], message_id: str) -> tuple[float, set[str], set[str]]:
        """In one round trip: the shared clock, which numbers are suppressed, and the
        templates cancelled while this message waited in the queue."""
        client = self.buffers.client
        pipe = client.pipeline(transaction=False)
        pipe.time()
        pipe.hmget(self.buffers.keys.suppressed, numbers or ["-"])
        pipe.hget(self.buffers.keys.cancelled_messages, message_id)
        (seconds, micros), values, cancelled = pipe.execute()
        now = self.buffers.clock() if self.buffers.clock else seconds + micros / 1_000_000
        now_ms = int(now * 1000)
        suppressed = {n for n, v in zip(numbers, values, strict=False) if active(v, now_ms)}
        templates = set(as_text(cancelled).split(",")) if cancelled else set()
        return now, suppressed, templates

    def _verdict(self, contact: Contact, now: float | None) -> Verdict:
        if self.eligibility is None or now is None:
            return SEND_NOW
        return self.eligibility.verdict(
            contact.number, contact.template_id, Schedule.of(contact), now
        )

    def _validate(self, payload: Any, contact_id: str) -> Contact | None:
        try:
            if not isinstance(payload, Mapping):
                raise ContactError("invalid_field", "a contact message must carry an object")
            return validate_contact(payload, self.rules)
        except ContactError as exc:
            self.rejects.record(exc.reason, str(exc), payload, contact_id)
            self._count_reject(exc.reason, contact_id)
            return None

    def _reject(self, reason: str, message: str, contact_id: str) -> None:
        self.rejects.record(reason, message, {}, contact_id)
        self._count_reject(reason, contact_id)

    def _count_reject(self, reason: str, contact_id: str) -> None:
        self.metrics.contacts.labels("rejected").inc()
        self.metrics.rejected.labels(reason).inc()
        log.warning("contact rejected", extra={"contact_id": contact_id, "reason": reason})


class Flusher:
    """Cuts batches whose oldest contact has waited long enough, and runs the outbox's reaper.

    Every worker process runs one; they race harmlessly because each cut and each reaper
    look is one Lua call that checks the time again. This is what makes G3 hold when the
    worker that appended a contact was killed: any live worker cuts its batch on time. It is
    also what sends retries when they come due, since no delayed message carries them.
    """

    def __init__(
        self,
        buffers: Buffers,
        outbox: Outbox,
        metrics: Metrics,
        holds: Holds | None = None,
        *,
        poll_seconds: float = 0.05,
        housekeeping_every_seconds: float = 10.0,
        housekeeping: Callable[[], object] | None = None,
        on_reconnect: Callable[[], object] | None = None,
        reconnected: Callable[[], bool] | None = None,
        health: RedisHealth | None = None,
    ) -> None:
        self.buffers = buffers
        self.outbox = outbox
        self.metrics = metrics
        self.holds = holds
        self.poll_seconds = poll_seconds
        self.housekeeping_every_seconds = housekeeping_every_seconds
        self.housekeeping = housekeeping
        self.on_reconnect = on_reconnect
        self.reconnected = reconnected
        self.health = health
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_housekeeping = 0.0

    def cut_due(self) -> tuple[int, float | None]:
        """Cut every overdue batch now; returns how many were cut and the seconds until the
        next deadline (None when nothing is pending)."""
        cut = 0
        due = self.buffers.due()
        for key in due.members:
            while (result := self.buffers.cut_due(key)) is not None:
                batch_id, size = result
                self.metrics.batches_cut.labels("time").inc()
                self.metrics.batch_size.observe(size)
                self.outbox.queue(batch_id)
                cut += 1
        if due.members:  # the next deadline moved: read it again on the next pass
            return cut, 0.0
        return cut, None if due.next_due is None else due.next_due - due.now

    def reap(self) -> tuple[int, float | None]:
        """Give a token to every batch whose outbox time has come; returns how many, and the
        seconds until the next such time."""
        due = self.outbox.due()
        sent = self.outbox.reap(due.members)
        for batch_id in sent:
            log.debug("queued a send token for a due batch", extra={"batch_id": batch_id})
        if due.members:
            return len(sent), 0.0
        return len(sent), None if due.next_due is None else due.next_due - due.now

    def release_due(self, max_calls: int = 20) -> tuple[int, float | None]:
        """Release held contacts whose time has come (up to `max_calls` bounded script calls
        per pass, so cutting and reaping stay prompt); returns how many, and the seconds until
        the next release."""
        if self.holds is None:
            return 0, None
        released, calls = 0, 0
        due = self.holds.due()
        for key in due.members:
            while calls < max_calls:
                calls += 1
                result = self.holds.release_due(key)
                released += result.released
                if result.expired:
                    self.metrics.expired.inc(result.expired)
                for batch_id in result.batch_ids:
                    self.metrics.batches_cut.labels("size").inc()
                    self.outbox.queue(batch_id)
                if result.released + result.expired < RELEASE_CHUNK:
                    break
        if released:
            self.metrics.released.inc(released)
        if due.members:
            return released, 0.0
        return released, None if due.next_due is None else due.next_due - due.now

    def run_once(self) -> float:
        """One pass; returns how long the loop may wait before the next one."""
        _, release_in = self.release_due()
        _, cut_in = self.cut_due()
        _, reap_in = self.reap()
        if self.housekeeping is not None and time.monotonic() >= self._next_housekeeping:
            self._next_housekeeping = time.monotonic() + self.housekeeping_every_seconds
            self.housekeeping()
        waits = [w for w in (release_in, cut_in, reap_in) if w is not None]
        return min([self.poll_seconds, *(max(0.005, w) for w in waits)])

    def _loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                wait = self.run_once()
            except Exception as exc:  # keep the thread alive through Redis blips
                if self.health is not None and connection_error(exc) is not None:
                    # Said once by the health object; the wait grows up to its cap.
                    wait = self.health.failed(exc)
                else:
                    log.exception("flusher pass failed; retrying")
                    wait = 1.0
                failing = True
            else:
                if self.health is not None:
                    self.health.succeeded()
                # After a Redis outage, however short: a pass of ours failed, or some connection
                # (a consumer's, a worker thread's) had to connect again.
                came_back = failing or (self.reconnected is not None and self.reconnected())
                if came_back and self.on_reconnect is not None:
                    self.on_reconnect()
                failing = False
            self._stop.wait(wait)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="levers-flusher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
