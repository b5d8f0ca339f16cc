"""The last failed send attempt, for operators: when, which batch, why, Levers' words.

One JSON value, overwritten by each failure (a retry, a dead letter, a 422 split); the
console's overview shows it beside the send rate. Metrics count failures; this says what the
latest one was without a log search.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from worker.keys import Keys
from worker.scripting import Clock, as_text, redis_now

DETAIL_CHARS = 300


class LastError:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock | None = None) -> None:
        self.client = client
        self.keys = keys
        self.clock = clock

    def note(
        self, *, batch_id: str, batch_key: str, cause: str, status: int | None, detail: str
    ) -> None:
        record = {
            "at": round(redis_now(self.client, self.clock), 3),
            "batch_id": batch_id,
            "batch_key": batch_key,
            "cause": cause,
            "status": status,
            "detail": detail[:DETAIL_CHARS],
        }
        self.client.set(self.keys.last_error, json.dumps(record, sort_keys=True))

    def read(self) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.last_error)
        return None if raw is None else dict(json.loads(as_text(raw)))
