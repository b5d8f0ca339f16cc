"""The batching store: pending buffers, deadlines and batch records in Redis.

All state changes go through the Lua scripts in `lua/` so that concurrent workers on any
number of hosts see one consistent buffer per batch key. Time comes from an injected clock
(seconds, like `time.time`) and is passed to Lua, so tests move a fake clock instead of
sleeping. No batching state lives in process memory.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import redis

from worker.contacts import Contact
from worker.keys import Keys

Clock = Callable[[], float]
AppendStatus = Literal["appended", "merged", "duplicate", "redelivered"]
ClaimVerdict = Literal["claimed", "unknown", "busy", "sent", "dead", "split", "missing", "idle"]
Outcome = Literal["sent", "retry", "dead", "split"]
Entry = tuple[str, dict[str, Any]]  # (contact id, the contact as Levers takes it)


def load_script(client: redis.Redis, name: str, *libraries: str) -> Any:
    """Register `lua/{name}.lua`, with the shared functions of `libraries` put before it."""
    folder = resources.files("worker").joinpath("lua")
    text = "".join(folder.joinpath(f"{part}.lua").read_text("utf-8") for part in (*libraries, name))
    return client.register_script(text)


def new_batch_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class StoreConfig:
    batch_max_size: int = 100
    batch_max_wait_seconds: float = 2.0
    dedupe_window_seconds: int = 3600
    # With dedupe off, how long a message id is remembered against redelivery, s.
    message_marker_seconds: int = 3600
    # A cut batch whose send message is not on the queue by then is queued by a reaper.
    outbox_grace_seconds: float = 15.0
    # A queued batch not claimed by then gets a fresh send message (a lost delayed message).
    requeue_after_seconds: float = 300.0
    send_lease_seconds: float = 120.0
    batch_retention_seconds: int = 86400
    rejects_kept: int = 10_000


@dataclass(frozen=True)
class AppendResult:
    status: AppendStatus
    batch_id: str | None  # set when this append filled the batch and cut it
    cut_size: int


@dataclass(frozen=True)
class Claim:
    verdict: ClaimVerdict
    batch_key: str = ""
    contacts: tuple[Entry, ...] = ()
    attempts: int = 0
    first_attempt_at: float = 0.0  # clock seconds of the batch's first send attempt
    batch_id: str = ""
    appended_at: tuple[float, ...] = ()  # clock seconds each contact was appended (if known)


@dataclass(frozen=True)
class KeyStatus:
    batch_key: str
    pending: int
    oldest_age_seconds: float


class BatchStore:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        config: StoreConfig,
        clock: Clock = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.config = config
        self.clock = clock
        self._append = load_script(client, "append", "cut")
        self._cut_due = load_script(client, "cut_due", "cut")
        self._queued = load_script(client, "queued")
        self._claim = load_script(client, "claim", "lease")
        self._pick = load_script(client, "pick", "lease")
        self._begin = load_script(client, "begin")
        self._finish = load_script(client, "finish")
        self._reap = load_script(client, "reap")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- aggregation ---------------------------------------------------------------------

    def append(self, contact: Contact, contact_id: str) -> AppendResult:
        """Add a validated contact; `contact_id` is stable across dramatiq redeliveries."""
        return self.append_many([(contact, contact_id)])[0]

    def append_many(self, contacts: Sequence[tuple[Contact, str]]) -> list[AppendResult]:
        """Add validated contacts in one round trip (one append.lua call each, pipelined).

        Each call is atomic on its own; if the round trip fails halfway, a redelivery of the
        same contact ids appends only those that did not make it.
        """
        pipe = self.client.pipeline(transaction=False)
        batch_ids = []
        for contact, contact_id in contacts:
            keys, args, batch_id = self._append_call(contact, contact_id)
            self._append(keys=keys, args=args, client=pipe)
            batch_ids.append(batch_id)
        results = []
        for (status, cut_size), batch_id in zip(pipe.execute(), batch_ids, strict=True):
            cut = int(cut_size)
            name: AppendStatus = as_text(status)  # type: ignore[assignment]
            results.append(AppendResult(name, batch_id if cut else None, cut))
        return results

    def _append_call(self, contact: Contact, contact_id: str) -> tuple[list[str], list[Any], str]:
        key = contact.batch_key
        token = f"k:{contact.dedupe_key}" if contact.dedupe_key else f"n:{contact.number}"
        batch_id = new_batch_id()
        now_ms = self._now_ms()
        # [contact id, the contact as Levers takes it, append time in ms]
        stored = json.dumps([contact_id, contact.to_levers(), now_ms], separators=(",", ":"))
        keys = [
            self.keys.pending(key),
            self.keys.order(key),
            self.keys.deadlines,
            self.keys.batch(batch_id),
            self.keys.inflight,
            self.keys.stats,
            self.keys.message(contact_id),
            self.keys.dedupe(key, token),
            self.keys.ready(key),
            self.keys.ready_keys,
        ]
        args = [
            now_ms,
            key,
            contact.number,
            stored,
            contact_id,
            self.config.batch_max_size,
            int(self.config.batch_max_wait_seconds * 1000),
            self.config.dedupe_window_seconds,
            self.config.message_marker_seconds,
            batch_id,
            int(self.config.outbox_grace_seconds * 1000),
        ]
        return keys, args, batch_id

    def due_keys(self, limit: int = 100) -> list[str]:
        """Batch keys whose deadline has passed, oldest first."""
        raw = self.client.zrangebyscore(self.keys.deadlines, "-inf", self._now_ms(), 0, limit)
        return [as_text(k) for k in raw]

    def next_deadline(self) -> float | None:
        """The earliest deadline in seconds (clock time), or None when nothing is pending."""
        first = self.client.zrange(self.keys.deadlines, 0, 0, withscores=True)
        return float(first[0][1]) / 1000 if first else None

    def cut_due(self, batch_key: str) -> tuple[str, int] | None:
        """Cut one overdue batch of `batch_key`; None when it was not due (any more)."""
        batch_id = new_batch_id()
        size = int(
            self._cut_due(
                keys=[
                    self.keys.pending(batch_key),
                    self.keys.order(batch_key),
                    self.keys.deadlines,
                    self.keys.batch(batch_id),
                    self.keys.inflight,
                    self.keys.stats,
                    self.keys.ready(batch_key),
                    self.keys.ready_keys,
                ],
                args=[
                    self._now_ms(),
                    batch_key,
                    batch_id,
                    self.config.batch_max_size,
                    int(self.config.batch_max_wait_seconds * 1000),
                    int(self.config.outbox_grace_seconds * 1000),
                ],
            )
        )
        return (batch_id, size) if size else None

    def record_reject(self, reason: str, message: str, payload: Any, contact_id: str) -> None:
        record = json.dumps(
            {
                "contact_id": contact_id,
                "reason": reason,
                "message": message,
                "payload": payload,
                "at": self.clock(),
            },
            separators=(",", ":"),
            default=str,
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(self.keys.stats, f"rejected_{reason}", 1)
        pipe.lpush(self.keys.rejects, record)
        pipe.ltrim(self.keys.rejects, 0, self.config.rejects_kept - 1)
        pipe.execute()

    # -- batch lifecycle -------------------------------------------------------------------

    def mark_queued(self, batch_id: str) -> bool:
        return bool(
            self._queued(
                keys=[self.keys.batch(batch_id), self.keys.inflight],
                args=[self._now_ms(), batch_id, int(self.config.requeue_after_seconds * 1000)],
            )
        )

    def claim(self, batch_id: str, owner: str, *, resend_unknown: bool = False) -> Claim:
        verdict, key, contacts, attempts, first_ms = self._claim(
            keys=[self.keys.batch(batch_id), self.keys.inflight],
            args=[
                self._now_ms(),
                batch_id,
                int(self.config.send_lease_seconds * 1000),
                owner,
                int(resend_unknown),
            ],
        )
        return _claim(verdict, key, contacts, attempts, first_ms, batch_id)

    def pick(self, hint: str, owner: str, *, resend_unknown: bool = False) -> Claim:
        """Claim the next batch to send, round robin across batch keys (see pick.lua).

        `hint` is the batch the send message names: if its attempt died in flight, the verdict
        is `unknown` for it; otherwise the batch claimed may be another (`Claim.batch_id`).
        """
        verdict, key, contacts, attempts, first_ms, batch_id = self._pick(
            keys=[self.keys.batch(hint), self.keys.inflight, self.keys.ready_keys],
            args=[
                self._now_ms(),
                hint,
                int(self.config.send_lease_seconds * 1000),
                owner,
                int(resend_unknown),
                self.keys.prefix,
            ],
        )
        return _claim(verdict, key, contacts, attempts, first_ms, as_text(batch_id))

    def begin(self, batch_id: str, owner: str) -> bool:
        """Mark the claimed batch `sending` just before its request; False: do not send."""
        return bool(
            self._begin(
                keys=[self.keys.batch(batch_id), self.keys.inflight],
                args=[
                    self._now_ms(),
                    batch_id,
                    owner,
                    int(self.config.send_lease_seconds * 1000),
                ],
            )
        )

    def finish(
        self,
        batch_id: str,
        owner: str,
        outcome: Outcome,
        *,
        status: int | None = None,
        detail: str = "",
        retry_at: float | None = None,
        sent: int = 0,
        throttled: bool = False,
        batch_key: str = "",
        children: Sequence[Sequence[Entry]] = (),
        dead_letters: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> list[str] | None:
        """Record an attempt's outcome. `owner=""` finishes a batch whose lease ran out.

        `batch_key` is needed for `retry` and `split`: the batch (or its children) become
        ready to send again in that key's queue.

        Returns the ids of the child batches made (outcome `split`; they wait in the outbox to be
        queued), or None when the caller no longer owned the batch and nothing was recorded.
        """
        now_ms = self._now_ms()
        if outcome == "split":
            look_at = now_ms + int(self.config.outbox_grace_seconds * 1000)
        else:
            look_at = int((retry_at or self.clock()) * 1000) + int(
                self.config.requeue_after_seconds * 1000
            )
        child_ids = [new_batch_id() for _ in children]
        args: list[Any] = [
            now_ms,
            batch_id,
            owner,
            outcome,
            "" if status is None else status,
            detail,
            self.config.batch_retention_seconds,
            look_at,
            sent,
            int(throttled),
            int((retry_at or self.clock()) * 1000),
            len(children),
            *child_ids,
            *(_compact(list(child)) for child in children),
        ]
        for dl_id, record in dead_letters:
            args += [dl_id, _compact(record)]
        done = self._finish(
            keys=[
                self.keys.batch(batch_id),
                self.keys.inflight,
                self.keys.stats,
                self.keys.dead,
                self.keys.dead_index,
                self.keys.ready(batch_key),
                self.keys.ready_keys,
                *(self.keys.batch(child) for child in child_ids),
            ],
            args=args,
        )
        return child_ids if done else None

    def reap(self, limit: int = 100) -> list[str]:
        """Batch ids that need a (new) send message: lost messages, long waits, dead leases."""
        due = self.client.zrangebyscore(self.keys.inflight, "-inf", self._now_ms(), 0, limit)
        to_send = []
        for raw in due:
            batch_id = as_text(raw)
            action = self._reap(
                keys=[self.keys.batch(batch_id), self.keys.inflight, self.keys.ready_keys],
                args=[
                    self._now_ms(),
                    batch_id,
                    int(self.config.requeue_after_seconds * 1000),
                    self.keys.prefix,
                ],
            )
            if as_text(action) == "send":
                to_send.append(batch_id)
        return to_send

    # -- inspection ----------------------------------------------------------------------

    def batch(self, batch_id: str) -> dict[str, str]:
        raw = self.client.hgetall(self.keys.batch(batch_id))
        return {as_text(k): as_text(v) for k, v in raw.items()}

    def pending_status(self) -> list[KeyStatus]:
        """Pending contacts and oldest age per batch key, in two round trips.

        The deadlines set names exactly the keys that have pending contacts (a key gets a
        deadline with its first contact and loses it when its buffer empties), so there is no
        need to scan the keyspace, which holds a dedupe marker per contact.
        """
        now = self.clock()
        keys = sorted(as_text(k) for k in self.client.zrange(self.keys.deadlines, 0, -1))
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.zcard(self.keys.order(key))
            pipe.zrange(self.keys.order(key), 0, 0, withscores=True)
        replies = pipe.execute()
        result = []
        for key, count, oldest in zip(keys, replies[::2], replies[1::2], strict=True):
            if count:
                age = max(0.0, now - float(oldest[0][1]) / 1000)
                result.append(KeyStatus(key, int(count), age))
        return result

    def inflight_states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        ids = [as_text(i) for i in self.client.zrange(self.keys.inflight, 0, -1)]
        pipe = self.client.pipeline(transaction=False)
        for batch_id in ids:
            pipe.hget(self.keys.batch(batch_id), "state")
        for state in pipe.execute():
            name = as_text(state) if state else "missing"
            counts[name] = counts.get(name, 0) + 1
        return counts

    def stats(self) -> dict[str, int]:
        return {as_text(k): int(v) for k, v in self.client.hgetall(self.keys.stats).items()}


def _claim(
    verdict: Any, key: Any, contacts: Any, attempts: Any, first_ms: Any, batch_id: str
) -> Claim:
    name: ClaimVerdict = as_text(verdict)  # type: ignore[assignment]
    if name not in ("claimed", "unknown"):
        return Claim(name, batch_id=batch_id)
    stored = json.loads(contacts)
    entries = tuple((item[0], item[1]) for item in stored)
    appended = tuple(item[2] / 1000 for item in stored if len(item) > 2)
    return Claim(
        name, as_text(key), entries, int(attempts), int(first_ms) / 1000, batch_id, appended
    )


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def as_text(value: Any) -> str:
    """Redis replies as str (the client returns bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
