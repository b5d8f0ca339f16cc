"""Is any worker consuming this namespace? A warning for producers that enqueue into the void.

Producers and workers must share `REDIS_URL` and `LEVERS_NAMESPACE`; a typo in either makes a
producer enqueue where no worker looks, and nothing fails. dramatiq's workers record a heartbeat
(their broker id, scored with the time in ms) in `<namespace>:dramatiq:__heartbeats__` on every
fetch, several times a second even when idle. A producer's broker writes there too when it
enqueues: ours take ids starting `producer-` (`mark_producer`), which are left out. When no
other heartbeat is newer than
`LEVERS_HEARTBEAT_TIMEOUT_MS` (after which dramatiq itself calls a worker dead), the producer
warns; it still enqueues, since a worker may be started later and will find the messages.
Another producer of the same namespace can hide a missing worker; never the other way round.
"""

from __future__ import annotations

import time
import uuid

import redis
from dramatiq.brokers.redis import RedisBroker

from worker.connection import describe
from worker.keys import Keys
from worker.settings import Settings

PRODUCER_PREFIX = "producer-"
_LOOKED_AT = 50  # newest heartbeats read: producers' ids among them are skipped


def mark_producer(broker: RedisBroker) -> None:
    """Give a producer's broker an id that tells it from a worker's in the heartbeats."""
    broker.broker_id = PRODUCER_PREFIX + str(uuid.uuid4())


def no_worker_warning(
    client: redis.Redis, settings: Settings, now_ms: int | None = None
) -> str | None:
    """A one-line warning when no worker has polled this namespace lately, else None."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    newest: list[tuple[bytes, float]] = client.zrevrange(  # type: ignore[assignment]
        Keys(settings.namespace).dramatiq_heartbeats, 0, _LOOKED_AT - 1, withscores=True
    )
    ages = [
        now_ms - score for member, score in newest if not _text(member).startswith(PRODUCER_PREFIX)
    ]
    if ages and ages[0] <= settings.heartbeat_timeout_ms:
        return None
    seen = f"the last one {ages[0] / 1000:.0f} s ago" if ages else "none ever"
    return (
        f"no levers-worker is consuming namespace {settings.namespace!r} at {describe(settings)} "
        f"(no heartbeat in the last {settings.heartbeat_timeout_ms / 1000:g} s; {seen}): "
        "contacts wait until one starts. Producers and workers must share REDIS_URL and "
        "LEVERS_NAMESPACE"
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
