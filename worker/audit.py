"""The operators' actions, recorded: who did what, to what, when, and why.

A capped list in Redis, newest first, shown by `levers-admin status` and the console. Every
action that changes what is called (pause, resume, cancel, releasing or expiring holds,
suppressing numbers, replaying or purging dead letters) is recorded here.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from typing import Any

import redis

from worker.keys import Keys
from worker.scripting import Clock, as_text, redis_now

KEEP = 1000


def operator() -> str:
    """Who is acting, for a command run by hand: LEVERS_OPERATOR, else user@host."""
    named = os.environ.get("LEVERS_OPERATOR", "").strip()
    if named:
        return named
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Audit:
    def __init__(self, client: redis.Redis, keys: Keys, clock: Clock | None = None) -> None:
        self.client = client
        self.keys = keys
        self.clock = clock

    def record(self, who: str, action: str, target: str, note: str, **details: Any) -> None:
        entry = {
            "at": round(redis_now(self.client, self.clock), 3),
            "who": who,
            "action": action,
            "target": target,
            "note": note,
            **details,
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.keys.audit, json.dumps(entry, sort_keys=True))
        pipe.ltrim(self.keys.audit, 0, KEEP - 1)
        pipe.execute()

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        return [json.loads(as_text(e)) for e in self.client.lrange(self.keys.audit, 0, limit - 1)]
