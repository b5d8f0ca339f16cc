"""Finding the primary through Sentinel, and leaving an old one as soon as it is replaced.

redis-py's Sentinel support asks the first sentinel that answers for the primary, and asks
only when a connection connects. Two things go wrong with that in a failover:

* An established connection to a primary that was replaced keeps working. After
  `SENTINEL FAILOVER` the old primary takes writes for about ten more seconds, until the
  sentinels make it a replica (it then drops its clients and discards what it took): measured
  here, a client writing all along lost the 11.2 s of writes it made after the promotion.
* Only the sentinel that leads a failover knows at once; the others learn the new primary
  from its hello messages, every 2 s.

So `FailoverAwareSentinel` asks every sentinel and believes the one with the highest
configuration epoch, and says there is no primary while any of them reports a failover in
progress (a replica may already have been promoted: writes to the old primary would be lost).
`FollowingSentinelPool` asks again, at most every PRIMARY_RECHECK_SECONDS, whenever a
connection is taken; when the answer changed, or a failover is in progress, it closes its
idle connections and drops the busy ones when they come back, so that every command after
that connects anew (redis-py retries a command that finds no primary about ten times over a
few seconds, which covers a failover). What is left is the time between a promotion and the
next check: see docs/guarantees.md, "Redis failover", for the figures.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

# While a client is in use, how often it asks the sentinels who the primary is, s.
PRIMARY_RECHECK_SECONDS = 0.1


class FailoverInProgress(MasterNotFoundError):
    """A sentinel is failing the primary over: until it is done, there is no primary to use."""


def _flags(state: dict[str, Any]) -> set[str]:
    flags = state.get("flags", "")
    return set(flags) if isinstance(flags, set) else set(str(flags).split(","))


class FailoverAwareSentinel(Sentinel):
    def discover_master(self, service_name: str) -> tuple[str, int]:
        """The primary named by the sentinel with the highest configuration epoch among those
        that answer. Raises FailoverInProgress while one of them fails it over, and
        MasterNotFoundError when none names a primary that is up."""
        best: tuple[int, str, int] | None = None
        errors = []
        for sentinel in self.sentinels:
            try:
                masters: dict[str, dict[str, Any]] = sentinel.sentinel_masters()  # type: ignore[assignment]
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                errors.append(f"{sentinel}: {exc!r}")
                continue
            state = masters.get(service_name)
            if not state:
                continue
            if "failover_in_progress" in _flags(state):
                raise FailoverInProgress(f"{service_name!r} is being failed over")
            if not self.check_master_state(state, service_name):  # type: ignore[no-untyped-call]
                continue
            epoch = int(state.get("config-epoch", 0))
            if best is None or epoch > best[0]:
                best = (epoch, str(state["ip"]), int(state["port"]))
        if best is None:
            detail = f": {', '.join(errors)}" if errors else ""
            raise MasterNotFoundError(f"no primary found for {service_name!r}{detail}")
        return best[1], best[2]


class FollowingSentinelPool(SentinelConnectionPool):
    """redis-py's Sentinel pool, made to leave a replaced primary while it is busy."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._checked_at = time.monotonic()
        self._checking = threading.Lock()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.follow()
        return super().get_connection(*args, **kwargs)

    def follow(self, *, now: bool = False) -> bool:
        """Ask the sentinels (if due, or `now`). True when the connections were moved off the
        primary they used: another one is named, or a failover is in progress."""
        if not now and time.monotonic() - self._checked_at < PRIMARY_RECHECK_SECONDS:
            return False
        if not self._checking.acquire(blocking=False):
            return False  # another thread is asking
        try:
            self._checked_at = time.monotonic()
            before = self.master_address
            if before is None:
                return False  # nothing connected: the next connection asks anyway
            try:
                # Closes the idle connections itself when the answer changed.
                return bool(self.get_master_address() != before)  # type: ignore[no-untyped-call]
            except FailoverInProgress:
                # Busy connections are dropped when they come back (they no longer match the
                # primary's address); idle ones are closed now.
                self.proxy.master_address = None
                self.disconnect(inuse_connections=False)
                return True
            except redis.RedisError:
                # No sentinel answers, or the primary is down: the connections find out.
                return False
        finally:
            self._checking.release()


def recheck_primary(client: redis.Redis) -> bool:
    """Ask the sentinels now (a no-op without Sentinel): for a writer that has just seen a
    sign of a failover, such as replicas that stopped confirming its writes."""
    pool = client.connection_pool
    return isinstance(pool, FollowingSentinelPool) and pool.follow(now=True)
