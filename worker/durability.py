"""Waiting for replicas: `LEVERS_REDIS_MIN_REPLICAS`, a Redis `WAIT` after the writes that matter.

Redis replicates asynchronously: the primary answers a write before any replica has it. When
Sentinel promotes a replica (the primary died, or an operator asked for a failover), whatever
the promoted replica had not received is gone, and so is whatever the old primary still took
from clients that had not yet noticed the promotion. With `LEVERS_REDIS_MIN_REPLICAS=n` the
writes below end with `WAIT n LEVERS_REDIS_WAIT_TIMEOUT_MS` in the same round trip, and the
answer says how many replicas have them.

Redis documents `WAIT` as waiting for the writes of its own connection, so it always rides in
the pipeline that made the write, never as a call of its own (which the pool may send on
another connection). The replication stream is one ordered log: a confirmed write also
confirms every write that completed before it, on any connection.

Which writes wait, and what happens when fewer than n replicas confirm in time
(`NotReplicatedError`; every shortfall is also logged and counted):

  producer enqueue  the caller is told: enqueued on the primary, not confirmed (single
                    contact: the error; `enqueue_contacts`: the `unconfirmed` rows, and the
                    rows after them are refused with `replicas_unavailable`, nothing enqueued).
                    Sending the unconfirmed ones again is safe while dedupe is on: the same
                    number (or `dedupe_key`) for the same batch key is dropped as a duplicate
                    if the first one survived.
  append            the contact message fails and dramatiq delivers it again (its contacts
                    are then `redelivered`, a no-op), until a delivery is confirmed.
  begin             the request is not sent: the batch is handed back (not counted as an
                    attempt) and tried again. This is the write that keeps a failover from
                    calling a batch twice: were `sending` lost, the new primary would send it
                    again.
  finish            the outcome stands; the log names the batch. If a failover loses it, the
                    batch is still `sending` on the new primary and becomes `unknown_outcome`.
  queue, reap       not waited for: a lost token or `queued` mark leaves the batch `cut` or
                    due in the outbox, and the reaper gives it a token again.

What n buys: a confirmed write is on n replicas. Sentinel promotes one replica, so only
n = all replicas makes "confirmed" mean "on the promoted one", whichever it is. What it costs:
one replica round trip per write that waits, and no progress at all (producers refused,
nothing sent) while fewer than n replicas are connected. See docs/guarantees.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from worker.errors import NotReplicatedError
from worker.sentinel import recheck_primary

log = logging.getLogger("levers.durability")


@dataclass(frozen=True)
class Durability:
    """How many replicas a write must reach (0: do not wait) and how long to wait for them."""

    replicas: int = 0
    timeout_ms: int = 1000
    on_shortfall: Callable[[NotReplicatedError], object] | None = None

    @property
    def enabled(self) -> bool:
        return self.replicas > 0

    def add_wait(self, pipe: Pipeline) -> None:
        """End `pipe` with WAIT (when enabled); `check` then reads its reply."""
        if self.enabled:
            _command(pipe, "WAIT", self.replicas, self.timeout_ms)

    def check(self, client: redis.Redis, operation: str, replies: list[Any]) -> list[Any]:
        """The replies of a pipeline ended by `add_wait`, without the WAIT's. Raises
        NotReplicatedError (with those replies as its `result`) when too few replicas
        confirmed."""
        if not self.enabled:
            return replies
        *rest, acked = replies
        self._confirm(client, operation, acked, rest)
        return rest

    def run_script(
        self, client: redis.Redis, script: Any, keys: list[str], args: list[Any], operation: str
    ) -> Any:
        """One Lua call, then WAIT, in one round trip; returns the script's reply. Raises
        NotReplicatedError (its `result`: the script's reply) when too few replicas confirmed."""
        if not self.enabled:
            return script(keys=keys, args=args)
        pipe = client.pipeline(transaction=False)
        script(keys=keys, args=args, client=pipe)
        self.add_wait(pipe)
        result, acked = pipe.execute()
        self._confirm(client, operation, acked, result)
        return result

    def transaction(
        self, client: redis.Redis, fill: Callable[[Pipeline], object], operation: str
    ) -> list[Any]:
        """The commands `fill` adds, in MULTI/EXEC, then WAIT, in one round trip; returns the
        replies of the commands inside. A command refused when queued (out of memory) aborts
        all of them; an error while they run is raised (the others did run).

        A transaction pipeline of redis-py cannot carry a WAIT after its EXEC, and a WAIT
        inside MULTI never blocks, so the MULTI and EXEC are written out here.
        """
        pipe = client.pipeline(transaction=False)
        _command(pipe, "MULTI")
        fill(pipe)
        _command(pipe, "EXEC")
        self.add_wait(pipe)
        replies = pipe.execute()
        done = replies[-2] if self.enabled else replies[-1]
        for reply in done:
            if isinstance(reply, Exception):
                raise reply
        if self.enabled:
            self._confirm(client, operation, replies[-1], done)
        return list(done)

    def _confirm(self, client: redis.Redis, operation: str, reply: Any, result: Any) -> None:
        """Raise NotReplicatedError (its `result`: `result`) when WAIT's `reply` is short."""
        acked = int(reply)
        if acked >= self.replicas:
            return
        error = NotReplicatedError(operation, acked, self.replicas, self.timeout_ms, result)
        log.warning(
            "write not confirmed by enough replicas",
            extra={"operation": operation, "acked": acked, "required": self.replicas},
        )
        if self.on_shortfall is not None:
            self.on_shortfall(error)
        # A primary that lost its replicas may have been replaced: ask the sentinels now
        # rather than at the next periodic check.
        recheck_primary(client)
        raise error


NO_WAIT = Durability()
"""Writes that do not wait for replicas (LEVERS_REDIS_MIN_REPLICAS=0)."""


def _command(pipe: Pipeline, *args: Any) -> None:
    pipe.execute_command(*args)  # type: ignore[no-untyped-call]
