"""The aggregator (one contact message at a time) and the flusher (cuts batches by age).

Both are plain objects that the dramatiq actors and the worker process call; tests build them
directly. `enqueue_batch` is how a cut batch reaches the send queue: it puts a send message on
the queue and then marks the batch `queued`. If the process dies in between, the batch stays in
the inflight outbox and the flusher's reaper queues it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from worker.contacts import Contact, validate_contact
from worker.errors import ContactError
from worker.metrics import Metrics
from worker.redis_health import RedisHealth, connection_error
from worker.store import AppendResult, BatchStore, Clock

log = logging.getLogger("levers.aggregator")

EnqueueBatch = Callable[[str], None]


class Aggregator:
    def __init__(
        self,
        store: BatchStore,
        enqueue_batch: EnqueueBatch,
        metrics: Metrics,
        default_region: str | None = None,
    ) -> None:
        self.store = store
        self.enqueue_batch = enqueue_batch
        self.metrics = metrics
        self.default_region = default_region

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
        valid: list[tuple[Contact, str]] = []
        positions: list[int] = []
        results: list[AppendResult | None] = [None] * len(items)
        for position, (item, contact_id) in enumerate(items):
            contact = self._validate(item, contact_id)
            if contact is not None:
                valid.append((contact, contact_id))
                positions.append(position)
        for position, result in zip(positions, self.store.append_many(valid), strict=True):
            results[position] = result
            self.metrics.contacts.labels(result.status).inc()
            if result.batch_id is not None:
                self.metrics.batches_cut.labels("size").inc()
                self.metrics.batch_size.observe(result.cut_size)
                self.enqueue_batch(result.batch_id)
        return results

    def _validate(self, payload: Any, contact_id: str) -> Contact | None:
        try:
            if not isinstance(payload, Mapping):
                raise ContactError("invalid_field", "a contact message must carry an object")
            return validate_contact(payload, self.default_region)
        except ContactError as exc:
            self.store.record_reject(exc.reason, str(exc), payload, contact_id)
            self.metrics.contacts.labels("rejected").inc()
            self.metrics.rejected.labels(exc.reason).inc()
            log.warning("contact rejected", extra={"contact_id": contact_id, "reason": exc.reason})
            return None


class Flusher:
    """Cuts batches whose oldest contact has waited long enough, and requeues stranded ones.

    Every worker process runs one; they race harmlessly because each cut is one Lua call that
    checks the deadline again. This is what makes G3 hold when the worker that appended a
    contact was killed: any live worker cuts its batch on time.
    """

    def __init__(
        self,
        store: BatchStore,
        enqueue_batch: EnqueueBatch,
        metrics: Metrics,
        *,
        poll_seconds: float = 0.05,
        reap_every_seconds: float = 1.0,
        housekeeping: Callable[[], object] | None = None,
        on_reconnect: Callable[[], object] | None = None,
        reconnected: Callable[[], bool] | None = None,
        health: RedisHealth | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.enqueue_batch = enqueue_batch
        self.metrics = metrics
        self.poll_seconds = poll_seconds
        self.reap_every_seconds = reap_every_seconds
        self.housekeeping = housekeeping
        self.on_reconnect = on_reconnect
        self.reconnected = reconnected
        self.health = health
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_reap = 0.0

    def cut_due(self) -> int:
        """Cut every overdue batch now; returns how many were cut."""
        cut = 0
        for key in self.store.due_keys():
            while (result := self.store.cut_due(key)) is not None:
                batch_id, size = result
                self.metrics.batches_cut.labels("time").inc()
                self.metrics.batch_size.observe(size)
                self.enqueue_batch(batch_id)
                cut += 1
        return cut

    def reap(self) -> int:
        ids = self.store.reap()
        for batch_id in ids:
            log.warning("requeueing stranded batch", extra={"batch_id": batch_id})
            self.enqueue_batch(batch_id)
        return len(ids)

    def run_once(self) -> None:
        self.cut_due()
        if self.clock() >= self._next_reap:
            self._next_reap = self.clock() + self.reap_every_seconds
            self.reap()
            if self.housekeeping is not None:
                self.housekeeping()

    def _wait_seconds(self) -> float:
        deadline = self.store.next_deadline()
        if deadline is None:
            return self.poll_seconds
        return min(self.poll_seconds, max(0.005, deadline - self.clock()))

    def _loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.run_once()
                wait = self._wait_seconds()
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
