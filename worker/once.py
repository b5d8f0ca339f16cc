"""Do something in Redis at most once: a marker and the commands it guards, in one transaction.

    done = run_once(client, marker, value, ttl_seconds, stage)

`stage` queues its commands (an enqueue, a record) on the MULTI/EXEC pipeline it is given; they
run together with `SET marker value EX ttl`, under WATCH of the marker, unless the marker is
already there. A redelivered message or a second webhook for the same call finds the marker
and queues nothing; a Redis failure leaves neither the marker nor the commands.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from redis.client import Pipeline

ROUNDS = 3


def run_once(
    client: redis.Redis,
    marker: str,
    value: str,
    ttl_seconds: int,
    stage: Callable[[Pipeline], object],
) -> bool:
    """True if this call ran `stage`; False if the marker was set (by us before, or by another
    process at the same moment). Raises redis-py's errors, with nothing applied."""
    for _ in range(ROUNDS):
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(marker)  # type: ignore[no-untyped-call]
                if pipe.exists(marker):
                    return False
                pipe.multi()
                pipe.set(marker, value, ex=max(1, ttl_seconds))
                stage(pipe)
                pipe.execute()
                return True
            except redis.WatchError:
                # The marker changed under us: the next round finds it set.
                continue
    return False
