"""Idempotency-Key: a retried POST enqueues nothing twice and gets the same answer again.

The answer to a POST with a key is stored under `Keys.idempotency(key)` in the same MULTI/EXEC
transaction that enqueues its contacts, and that transaction runs under WATCH of the key:

* the key is new: the contacts and the record go in together, or (Redis fails, the reply is
  lost, another request with the key commits first) neither does;
* the key holds a record of the same body: its answer is given again and nothing is enqueued;
* the key holds a record of another body: `KeyReused` (409).

Two requests with one key at once both WATCH the absent key; the first EXEC wins, the second
is refused because the key changed, reads the winner's record and answers from it. There is no
"in progress" marker, so a request that dies half-way blocks no retry.

The record is compact, not the answer's JSON (a list of 100 contacts is about 200 bytes, not
8 KB): the body's fingerprint, the count of contacts, the rejections, and the ids of the
messages with how many contacts each carries. `Outcomes.answer` rebuilds the answer from it,
for the first answer and every replay alike, so the two cannot differ.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from producers.api import EnqueueResult

# WATCH conflicts in a row before giving up: after one, the key holds a record and the next
# round answers from it, so more than two means Redis connections keep failing.
MAX_ROUNDS = 3


class KeyReused(Exception):
    """The Idempotency-Key was used before for a different body."""


class Contended(Exception):
    """Every round lost its WATCH without finding a record: Redis connections keep failing."""


def fingerprint(body: bytes) -> str:
    """What makes two bodies "the same": their bytes, as a client's retry sends them again."""
    return hashlib.sha256(body).hexdigest()[:32]


@dataclass(frozen=True)
class Outcomes:
    """Each contact's outcome of one request, in a form small enough to keep for a day."""

    total: int
    rejections: tuple[tuple[int, str, str], ...]  # (index, reason, message)
    messages: tuple[tuple[str, int], ...]  # (message id, contacts it carries), in order

    @classmethod
    def of(cls, total: int, result: EnqueueResult) -> Outcomes:
        """From `Producer.enqueue_contacts`' result: accepted contact ids are
        `<message id>:<position>`, handed out in order."""
        messages: list[tuple[str, int]] = []
        for _, contact_id in result.accepted:
            message_id = contact_id.rpartition(":")[0]
            if messages and messages[-1][0] == message_id:
                messages[-1] = (message_id, messages[-1][1] + 1)
            else:
                messages.append((message_id, 1))
        rejections = tuple((r.index, r.reason, r.message) for r in result.rejected)
        return cls(total, rejections, tuple(messages))

    @property
    def accepted(self) -> int:
        return self.total - len(self.rejections)

    def answer(self) -> dict[str, Any]:
        """The 202 body (`models.Answer`)."""
        rejected = {index: (reason, message) for index, reason, message in self.rejections}
        ids = (f"{mid}:{position}" for mid, count in self.messages for position in range(count))
        contacts: list[dict[str, Any]] = []
        for index in range(self.total):
            if index in rejected:
                reason, message = rejected[index]
                contacts.append(
                    {"index": index, "status": "rejected", "reason": reason, "message": message}
                )
            else:
                contacts.append({"index": index, "status": "accepted", "contactId": next(ids)})
        return {"accepted": self.accepted, "rejected": len(self.rejections), "contacts": contacts}

    def encode(self, body_fingerprint: str) -> str:
        return json.dumps(
            {
                "f": body_fingerprint,
                "t": self.total,
                "r": self.rejections,
                "m": self.messages,
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> tuple[str, Outcomes]:
        """(fingerprint of the body, outcomes) of a stored record."""
        data = json.loads(raw)
        rejections = tuple((int(i), str(r), str(m)) for i, r, m in data["r"])
        messages = tuple((str(mid), int(n)) for mid, n in data["m"])
        return str(data["f"]), cls(int(data["t"]), rejections, messages)


Stage = Callable[[Pipeline], Outcomes]


def commit_once(
    client: redis.Redis,
    key: str,
    body_fingerprint: str,
    ttl_seconds: int,
    stage: Stage,
) -> tuple[Outcomes, bool]:
    """Run `stage` (which queues the request's messages on the pipeline it is given) and store
    its outcomes under `key`, in one transaction, unless `key` holds a record already.

    Returns (outcomes, replayed). Raises `KeyReused` for a record of another body, `Contended`,
    or redis-py's errors (nothing was enqueued then, or the record is there for a retry).
    """
    for _ in range(MAX_ROUNDS):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                stored = pipe.get(key)
                if stored is not None:
                    return _replay(stored, body_fingerprint), True
                pipe.multi()
                outcomes = stage(pipe)
                pipe.set(key, outcomes.encode(body_fingerprint), ex=ttl_seconds)
                pipe.execute()
                return outcomes, False
            except redis.WatchError:
                # Another request with this key committed first (its record is read next
                # round), or the connection failed while watching (nothing of ours applied).
                continue
    raise Contended(f"no transaction could be completed in {MAX_ROUNDS} rounds")


def _replay(stored: bytes | str, body_fingerprint: str) -> Outcomes:
    stored_fingerprint, outcomes = Outcomes.decode(stored)
    if stored_fingerprint != body_fingerprint:
        raise KeyReused("this Idempotency-Key was used for a different body")
    return outcomes
