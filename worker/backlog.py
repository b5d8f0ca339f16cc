"""The backlog: every contact not yet sent, by where it waits, from a few counters.

    queued     in dramatiq's contacts queue (or its delay queue), not yet aggregated
    pending    in an open batch, waiting to be cut
    held       waiting for its calling window, its not_before, or an operator (worker.holds)
    in flight  in a cut batch not yet sent or dead (cut, queued, claimed, sending)

Producers count a message's contacts in when they enqueue it (`count_in`, in the same
transaction); the aggregator counts them out when it has handled the message (`settle`), once
per message whatever dramatiq redelivers. Pending and in-flight counts are kept by the
scripts that move contacts (see lua/states.lua). So status, every metrics scrape and the
autoscaler read the same exact numbers at the same small cost with ten batches or a million
contacts waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from worker.broker import CONTACTS_QUEUE
from worker.keys import Keys
from worker.outbox import IN_FLIGHT_STATES
from worker.scripting import as_text, load_script


@dataclass(frozen=True)
class Backlog:
    queued: int
    pending: int
    held: int
    in_flight: dict[str, int]  # contacts per state
    batches: dict[str, int]  # batches per state
    queue_messages: dict[str, int]  # dramatiq's own lists: contacts queue, delay queue, failed

    @property
    def total(self) -> int:
        return self.queued + self.pending + self.held + sum(self.in_flight.values())


class QueuedContacts:
    """The `queued` count: contacts on dramatiq's contacts queue, in contacts not messages."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._settle = load_script(client, "settle")

    def count_in(self, pipe: redis.client.Pipeline, message_id: str, contacts: int) -> None:
        """Add to `pipe` (the producer's enqueue transaction) the count of one message."""
        pipe.hset(self.keys.queued_messages, message_id, contacts)
        pipe.hincrby(self.keys.gauges, "queued", contacts)

    def settle(self, message_id: str) -> int:
        """The message is handled: take its contacts off (once). Returns how many."""
        return int(
            self._settle(keys=[self.keys.queued_messages, self.keys.gauges], args=["", message_id])
        )


def read_backlog(client: redis.Redis, keys: Keys) -> Backlog:
    """The whole backlog in one round trip."""
    queue = f"{keys.dramatiq}:{CONTACTS_QUEUE}"
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.gauges)
    pipe.llen(queue)
    pipe.llen(f"{queue}.DQ")
    pipe.zcard(f"{queue}.XQ")
    raw, ready, delayed, failed = pipe.execute()
    gauges = {as_text(k): int(v) for k, v in raw.items()}
    return Backlog(
        queued=max(0, gauges.get("queued", 0)),
        pending=gauges.get("pending", 0),
        held=gauges.get("held", 0),
        in_flight={s: gauges.get(f"contacts:{s}", 0) for s in IN_FLIGHT_STATES},
        batches={s: gauges.get(f"batches:{s}", 0) for s in IN_FLIGHT_STATES},
        queue_messages={"queue": ready, "delayed": delayed, "failed": failed},
    )


def read_totals(client: redis.Redis, keys: Keys) -> dict[str, int]:
    """The running totals (`{ns}:stats`): contacts appended, cut, sent, dead, rejects..."""
    return {as_text(k): int(v) for k, v in client.hgetall(keys.stats).items()}
