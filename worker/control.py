"""The operators' brakes: pause, resume and cancel, per template or for everything.

* pause: contacts keep arriving and waiting (appended, held, cut); no request leaves for the
  template (pick.lua passes its batches over; begin.lua checks again, atomically).
* resume: the pause ends; every batch of the template that waits gets a token at once.
* cancel: what waits for the template goes to the dead letters as `cancelled` (replayable):
  its pending and held contacts, its cut and queued batches, contacts still in dramatiq's
  queue (their messages are marked; the aggregator dead-letters them when it reaches them),
  and batches an attempt holds but has not sent (begin.lua). A request on the wire finishes.

Each action is recorded with its time, who and a note (worker.audit), shown by `levers-admin
status` and the console.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis

from worker.audit import Audit
from worker.broker import CONTACTS_QUEUE, send_message
from worker.buffers import BufferConfig
from worker.contacts import DEFAULT_TEMPLATE, parse_batch_key
from worker.deadletters import CANCELLED
from worker.keys import Keys
from worker.scripting import Clock, as_text, compact, load_script, redis_now, time_arg

ALL = "*"
HELD_CHUNK = 1000
# How long a cancelled message id is remembered: longer than a message can wait in a queue.
CANCELLED_MESSAGES_SECONDS = 7 * 86400


@dataclass(frozen=True)
class Cancelled:
    contacts: int  # dead-lettered now
    messages: int  # marked in dramatiq's queue: their contacts follow when they are reached


class Control:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        config: BufferConfig,
        broker: dramatiq.Broker,
        *,
        batch_retention_seconds: int = 86400,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.config = config
        self.broker = broker
        self.batch_retention_seconds = batch_retention_seconds
        self.clock = clock
        self.audit = Audit(client, keys, clock)
        self._cancel = load_script(client, "cancel", "states", "entries")

    # -- reading -----------------------------------------------------------------------------

    def paused(self) -> dict[str, dict[str, Any]]:
        """Paused templates ("*": everything) -> who paused them, when, why."""
        return self.read_paused(self.client, self.keys)

    @staticmethod
    def read_paused(client: redis.Redis, keys: Keys) -> dict[str, dict[str, Any]]:
        raw = client.hgetall(keys.paused)
        return {as_text(k): json.loads(v) for k, v in raw.items()}

    # -- acting ------------------------------------------------------------------------------

    def pause(self, template: str, *, note: str, who: str) -> bool:
        """Returns False when it was paused already (the first record is kept)."""
        now = redis_now(self.client, self.clock)
        record = json.dumps({"at": now, "by": who, "note": note})
        done = bool(self.client.hsetnx(self.keys.paused, template, record))
        self.audit.record(who, "pause", template, note)
        return done

    def resume(self, template: str, *, note: str, who: str) -> int:
        """End a pause; returns how many waiting batches were handed a token."""
        self.client.hdel(self.keys.paused, template)
        self.audit.record(who, "resume", template, note)
        now_ms = int(redis_now(self.client, self.clock) * 1000)
        tokens = 0
        for batch_key in self._batch_keys(template, ready_only=True):
            ids = [as_text(i) for i in self.client.zrange(self.keys.ready(batch_key), 0, -1)]
            if not ids:
                continue
            # Due now (a paused batch was put back with a later time), with a token each.
            pipe = self.client.pipeline(transaction=False)
            pipe.zadd(self.keys.ready(batch_key), dict.fromkeys(ids, now_ms), xx=True)
            pipe.zadd(self.keys.ready_keys, {batch_key: 0}, nx=True)
            pipe.execute()
            for batch_id in ids:
                self.broker.enqueue(send_message(batch_id))
            tokens += len(ids)
        return tokens

    def cancel(self, template: str, *, note: str, who: str) -> Cancelled:
        now_ms = int(redis_now(self.client, self.clock) * 1000)
        # First the mark (batches an attempt holds are cancelled when they would be sent),
        # then the messages still queued, then what waits in Redis: anything appended after
        # the mark came from a message enqueued after the cancel, or was marked.
        self.client.hset(self.keys.cancelled, template, now_ms)
        self.audit.record(who, "cancel", template, note)
        messages = self._mark_queued_messages(template)
        contacts = 0
        for batch_key in self._batch_keys(template):
            contacts += self._cancel_pending(batch_key)
            while (held := self._run(batch_key, "held", HELD_CHUNK)) > 0:
                contacts += held
            contacts += self._cancel_batches(batch_key)
        return Cancelled(contacts, messages)

    # -- cancel, step by step ------------------------------------------------------------------

    def _run(self, batch_key: str, mode: str, *args: Any, record: str = "-") -> int:
        return int(
            self._cancel(
                keys=[
                    self.keys.pending(batch_key),
                    self.keys.order(batch_key),
                    self.keys.deadlines,
                    self.keys.held(batch_key),
                    self.keys.release(batch_key),
                    self.keys.releases,
                    self.keys.held_since,
                    self.keys.gauges,
                    self.keys.stats,
                    self.keys.dead,
                    self.keys.dead_index,
                    self.keys.inflight,
                    self.keys.ready(batch_key),
                    self.keys.batch(record) if record != "-" else self.keys.batch("-"),
                ],
                args=[time_arg(self.clock), batch_key, mode, *args],
            )
        )

    def _cancel_pending(self, batch_key: str) -> int:
        entries = self.client.hgetall(self.keys.pending(batch_key))
        args: list[Any] = []
        for number, stored in entries.items():
            item = json.loads(stored)
            dl_id = item[0]
            args += [as_text(number), stored, dl_id, compact(_letter(dl_id, batch_key, item))]
        if not args:
            return 0
        wait_ms = int(self.config.batch_max_wait_seconds * 1000)
        return self._run(batch_key, "pending", wait_ms, *args)

    def _cancel_batches(self, batch_key: str) -> int:
        done = 0
        for raw in self.client.zrange(self.keys.ready(batch_key), 0, -1):
            batch_id = as_text(raw)
            stored = self.client.hget(self.keys.batch(batch_id), "contacts")
            if stored is None:
                continue
            letters: list[Any] = []
            for index, item in enumerate(json.loads(stored)):
                dl_id = f"{batch_id}:{index}"
                letters += [dl_id, compact(_letter(dl_id, batch_key, item, batch_id))]
            done += self._run(
                batch_key,
                "batch",
                batch_id,
                self.batch_retention_seconds,
                *letters,
                record=batch_id,
            )
        return done

    def _mark_queued_messages(self, template: str) -> int:
        """Mark the contact messages waiting in dramatiq's queue (the queue, its delay queue
        and every consumer's fetched-but-unacknowledged set) as cancelled for `template`."""
        queue = f"{self.keys.dramatiq}:{CONTACTS_QUEUE}"
        redis_ids: set[str] = set()
        for name in (queue, f"{queue}.DQ"):
            redis_ids.update(as_text(i) for i in self.client.lrange(name, 0, -1))
        for acks in self.client.scan_iter(match=f"{self.keys.dramatiq}:__acks__.*", count=1000):
            if as_text(acks).endswith((CONTACTS_QUEUE, f"{CONTACTS_QUEUE}.DQ")):
                redis_ids.update(as_text(i) for i in self.client.smembers(acks))
        if not redis_ids:
            return 0
        # dramatiq keeps messages by a Redis-level id; the aggregator knows the message id.
        found = []
        for name in (f"{queue}.msgs", f"{queue}.DQ.msgs"):
            found += [raw for raw in self.client.hmget(name, list(redis_ids)) if raw is not None]
        message_ids = [dramatiq.Message.decode(_bytes(raw)).message_id for raw in found]
        earlier = self.client.hmget(self.keys.cancelled_messages, message_ids) if found else []
        pipe = self.client.pipeline(transaction=False)
        for message_id, before in zip(message_ids, earlier, strict=True):
            templates = {template} | (set(as_text(before).split(",")) if before else set())
            pipe.hset(self.keys.cancelled_messages, message_id, ",".join(sorted(templates)))
        pipe.expire(self.keys.cancelled_messages, CANCELLED_MESSAGES_SECONDS)
        pipe.execute()
        return len(message_ids)

    def _batch_keys(self, template: str, *, ready_only: bool = False) -> list[str]:
        """The batch keys of `template` (both updateExisting values), or every key with
        something waiting for "*"."""
        if template != ALL:
            return [f"{template}:0", f"{template}:1"]
        found = {as_text(k) for k in self.client.zrange(self.keys.ready_keys, 0, -1)}
        if not ready_only:
            found |= {as_text(k) for k in self.client.zrange(self.keys.deadlines, 0, -1)}
            found |= {as_text(k) for k in self.client.zrange(self.keys.releases, 0, -1)}
        return sorted(found)


def parse_template(value: str) -> str | None:
    """An operator's template argument: `default`, or an aiSettingsTemplateId (a UUID, in its
    canonical form); None for anything else."""
    if value == DEFAULT_TEMPLATE:
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def template_of(batch_key: str) -> str:
    template_id, _ = parse_batch_key(batch_key)
    return template_id or DEFAULT_TEMPLATE


def _letter(
    dl_id: str, batch_key: str, item: list[Any], batch_id: str | None = None
) -> dict[str, Any]:
    """A dead letter `cancelled` for a stored entry [contact id, contact, appended ms, ...]."""
    return {
        "id": dl_id,
        "reason": CANCELLED,
        "batch_id": batch_id,
        "batch_key": batch_key,
        "contact_id": item[0],
        "contact": item[1],
        "status": None,
        "detail": "its template was cancelled by an operator",
        "attempts": 0,
    }


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
