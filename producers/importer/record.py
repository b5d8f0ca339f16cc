"""What Redis knows of each file imported: how far it got, so `--resume` never enqueues a row
twice and a second import of the same file is refused unless asked for.

One hash per (namespace, file content) under `Keys.import_record(sha256)`: the last line done,
counts (accepted, rejected by reason), the options, times, and the id of the run that owns it.
It is written **in the same MULTI/EXEC transaction as the messages of each chunk**, so a crash
at any moment leaves either the chunk enqueued and recorded, or neither: there is no window in
which a row is enqueued but not recorded. The transaction WATCHes the record and checks the
owner, so a second `levers-enqueue` of the same file (or the first one, after `--resume` took
over from it) stops before enqueueing anything instead of enqueueing rows twice.

The record lives in Redis rather than in a local state file because that is where the messages
are: it is lost only with them, and a resume from another host or container sees it.

With `LEVERS_REDIS_MIN_REPLICAS` each chunk's transaction is followed by a WAIT (worker/
durability.py). A chunk too few replicas confirmed is counted `unconfirmed` and the import goes
on: if a failover loses it, it loses the record of it too, so `--resume` enqueues it again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from producers.importer.source import FileFacts
from worker.backlog import QueuedContacts
from worker.broker import enqueue_pipelined
from worker.durability import NO_WAIT, Durability
from worker.errors import BacklogFullError, NotReplicatedError
from worker.headroom import Headroom
from worker.keys import Keys
from worker.scripting import as_text
from worker.suppression import Suppression

_REASON = "r:"


class ImportRefused(Exception):
    """The record says this run must not go on (already imported, options differ, taken over)."""


@dataclass
class Progress:
    """Counts for the whole file: those of earlier runs (on resume) plus this run's."""

    line: int = 0
    rows: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    unconfirmed: int = 0  # accepted rows too few Redis replicas confirmed (this run only)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


def _when(ms: Any) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class ImportRecord:
    def __init__(
        self,
        broker: RedisBroker,
        keys: Keys,
        facts: FileFacts,
        options: Mapping[str, Any],
        retention_seconds: int,
        *,
        max_backlog_bytes: int = 0,
        durability: Durability = NO_WAIT,
    ) -> None:
        self.broker = broker
        self.durability = durability
        self.client: redis.Redis = broker.client
        self.key = keys.import_record(facts.sha256)
        # What every producer does besides enqueueing (see producers.api.Producer).
        self.queued = QueuedContacts(self.client, keys)
        self.headroom = Headroom(self.client, keys, max_backlog_bytes)
        self.suppression = Suppression(self.client, keys)
        self.facts = facts
        self.options = json.dumps(dict(options), sort_keys=True)
        self.retention_seconds = retention_seconds
        self.run_id = uuid.uuid4().hex
        self.began = False
        self.line = 0  # every row through this line is enqueued (or rejected) and recorded

    def begin(self, *, resume: bool, force: bool) -> Progress:
        """Take the record for this run; returns where to start. ImportRefused when the file was
        imported already, or stopped partway and neither --resume nor --force was given."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.watch(self.key)  # type: ignore[no-untyped-call]
            state = {as_text(k): as_text(v) for k, v in pipe.hgetall(self.key).items()}
            progress = Progress()
            if state and not force:
                progress = self._resumable(state, resume)
            now = int(time.time() * 1000)
            fresh = not state or force
            pipe.multi()
            if fresh:
                pipe.delete(self.key)
            pipe.hset(
                self.key,
                mapping={
                    "owner": self.run_id,
                    "path": str(self.facts.path),
                    "size": self.facts.size,
                    "options": self.options,
                    "line": progress.line,
                    "updated_ms": now,
                    **({"started_ms": now} if fresh else {}),
                },
            )
            pipe.expire(self.key, self.retention_seconds)
            try:
                pipe.execute()
            except redis.WatchError:
                raise ImportRefused(
                    "another levers-enqueue of this file started at the same moment"
                ) from None
        self.began, self.line = True, progress.line
        return progress

    def _resumable(self, state: dict[str, str], resume: bool) -> Progress:
        line = int(state.get("line", 0))
        counts = (
            f"{state.get('accepted', 0)} accepted, "
            f"{sum(int(v) for k, v in state.items() if k.startswith(_REASON))} rejected"
        )
        if "finished_ms" in state:
            raise ImportRefused(
                f"this file was imported already, on {_when(state['finished_ms'])} ({counts}); "
                "--force imports it again (the worker drops a number called within "
                "LEVERS_DEDUPE_WINDOW_SECONDS as a duplicate; the others are called again)"
            )
        if not resume:
            raise ImportRefused(
                f"an import of this file stopped after line {line} on "
                f"{_when(state.get('updated_ms', 0))} ({counts}); --resume continues after "
                "that line, --force starts again from line 1"
            )
        if state.get("options") != self.options:
            raise ImportRefused(
                f"the interrupted import used other options ({state.get('options')}); resume "
                "it with the same --template, --update-existing, --region and column options"
            )
        return Progress(
            line=line,
            rows=int(state.get("rows", 0)),
            accepted=int(state.get("accepted", 0)),
            rejected={k[len(_REASON) :]: int(v) for k, v in state.items() if k.startswith(_REASON)},
        )

    def commit(
        self,
        messages: list[dramatiq.Message[Any]],
        line: int,
        rows: int,
        accepted: int,
        rejected: Mapping[str, int],
    ) -> bool:
        """Enqueue one chunk's messages and record it done through `line`, atomically; returns
        False when too few replicas confirmed it (LEVERS_REDIS_MIN_REPLICAS).

        Refused (nothing of the chunk enqueued: the import stops, `--resume` goes on from this
        chunk later) while Redis is too full for it (worker/headroom.py)."""
        try:
            self.headroom.check(sum(len(m.args[0]) for m in messages))
        except BacklogFullError as exc:
            raise ImportRefused(f"{exc}.") from None
        with self.client.pipeline(transaction=True) as pipe:
            pipe.watch(self.key)  # type: ignore[no-untyped-call]
            owner = pipe.hget(self.key, "owner")
            if owner is None or as_text(owner) != self.run_id:
                raise ImportRefused(
                    "another levers-enqueue took over this file's import (--resume or --force "
                    "elsewhere); this one stops without enqueueing more"
                )
            pipe.multi()
            for message in messages:
                self.queued.count_in(pipe, message.message_id, len(message.args[0]))
            if messages:
                enqueue_pipelined(self.broker, messages, pipe)
            pipe.hset(self.key, mapping={"line": line, "updated_ms": int(time.time() * 1000)})
            pipe.hincrby(self.key, "rows", rows)
            pipe.hincrby(self.key, "accepted", accepted)
            for reason, count in rejected.items():
                pipe.hincrby(self.key, _REASON + reason, count)
            pipe.expire(self.key, self.retention_seconds)
            try:
                pipe.execute()
            except redis.WatchError:
                raise ImportRefused(
                    "another levers-enqueue took over this file's import; this one stops "
                    "without enqueueing more"
                ) from None
        self.line = line
        return self._confirmed(line)

    def _confirmed(self, line: int) -> bool:
        """WAIT for replicas after the chunk's transaction. redis-py ran that on a pooled
        connection, and WAIT only waits for its own connection's writes, so it follows a write
        of its own: the same `line` again. The replication stream is ordered, so confirming
        that write confirms the transaction before it."""
        if not self.durability.enabled:
            return True
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.key, "line", line)
        self.durability.add_wait(pipe)
        try:
            self.durability.check(self.client, "import", pipe.execute())
        except NotReplicatedError:
            return False
        return True

    def suppressed(self, numbers: list[str]) -> set[str]:
        """Which of these numbers are on the do-not-call list now."""
        return self.suppression.check(numbers)

    def discard(self) -> None:
        """After a file-level error: forget a record of this run that enqueued nothing."""
        state = self.client.hmget(self.key, "owner", "accepted")
        if state[0] is not None and as_text(state[0]) == self.run_id and not state[1]:
            self.client.delete(self.key)

    def finish(self) -> None:
        self.client.hset(self.key, "finished_ms", int(time.time() * 1000))
