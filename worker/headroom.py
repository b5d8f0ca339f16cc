"""Headroom: producers are refused before Redis is full, so workers can always make progress.

A Redis at `maxmemory` with `noeviction` refuses every command that needs memory. If
producers could fill it, the contacts already accepted could not be appended (an append
grows a contact from its queued message to a pending entry plus a dedupe marker) and the
pipeline would stop with nothing to free memory. So producers are held to a high-water mark
below the limit: `LEVERS_MAX_BACKLOG_BYTES`, or by default 80 % of Redis's `maxmemory` when one
is set. A producer's call is refused (`BacklogFullError`, retryable, nothing enqueued) when
Redis's memory plus what the contacts already queued and the new ones will grow by would pass
the mark. The rest is the workers' room: they cut, send and finish (the scripts that do so
run even at `maxmemory`, see worker/scripting.py), and sending frees memory.
"""

from __future__ import annotations

import time

import redis

from worker.errors import BacklogFullError
from worker.keys import Keys

# How much a contact grows when it is appended: pending entry and dedupe marker (537 B
# measured, README "Performance") minus its share of a queued message (125 B), rounded up.
GROWTH_PER_CONTACT_BYTES = 512
DEFAULT_SHARE = 0.8
# How often the limit itself (maxmemory) is read again, s.
LIMIT_REFRESH_SECONDS = 60.0


class Headroom:
    def __init__(self, client: redis.Redis, keys: Keys, limit_bytes: int = 0) -> None:
        """`limit_bytes` 0 means 80 % of Redis's maxmemory, or no limit when none is set."""
        self.client = client
        self.keys = keys
        self.configured = limit_bytes
        self._limit: int | None = None
        self._read_at = float("-inf")

    def limit(self) -> int | None:
        if self.configured:
            return self.configured
        if time.monotonic() - self._read_at > LIMIT_REFRESH_SECONDS:
            maxmemory = int(self.client.info("memory").get("maxmemory", 0))
            self._limit = int(maxmemory * DEFAULT_SHARE) if maxmemory else None
            self._read_at = time.monotonic()
        return self._limit

    def check(self, incoming: int) -> None:
        """Raise BacklogFullError if `incoming` more contacts would pass the mark."""
        limit = self.limit()
        if limit is None:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.info("memory")
        pipe.hget(self.keys.gauges, "queued")
        memory, queued = pipe.execute()
        used = int(memory["used_memory"])
        expected = used + (max(0, int(queued or 0)) + incoming) * GROWTH_PER_CONTACT_BYTES
        if expected > limit:
            raise BacklogFullError(expected, limit)
