"""Contacts the aggregator refused: counted by reason, the latest kept for a while to look at.

Producers validate before enqueueing, so a reject here means a message that did not come
through our producer (or rules that changed in between). The record keeps the reason, the
message and the payload with every phone number masked; the list is capped and expires a
while after the last reject, so no number is kept for ever.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from worker.keys import Keys
from worker.logs import mask_numbers
from worker.scripting import Clock, as_text, load_script, time_arg

KEEP = 10_000
TTL_SECONDS = 7 * 86400


class Rejects:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        keep: int = KEEP,
        ttl_seconds: int = TTL_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.keep = keep
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._reject = load_script(client, "reject")

    def record(self, reason: str, message: str, payload: Any, contact_id: str) -> None:
        masked = mask_numbers(json.dumps(payload, separators=(",", ":"), default=str))
        record = (
            '{"contact_id":'
            + json.dumps(contact_id)
            + ',"reason":'
            + json.dumps(reason)
            + ',"message":'
            + json.dumps(mask_numbers(message))
            + ',"payload":'
            + json.dumps(masked)
            + "}"
        )
        self._reject(
            keys=[self.keys.rejects, self.keys.stats],
            args=[time_arg(self.clock), reason, record, self.keep, self.ttl_seconds],
        )

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest rejects, newest first."""
        raw = self.client.lrange(self.keys.rejects, 0, limit - 1)
        return [json.loads(as_text(r)) for r in raw]
