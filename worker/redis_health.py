"""Redis as one worker process sees it: up or down, said once per change, retried with backoff.

When Redis goes away under a running worker, every consumer thread, every worker thread with a
message in hand and the flusher fail at once, and dramatiq logs each failure with a traceback
(hundreds of lines in a few seconds). Here:

* `RedisHealth` keeps the state. The first failure logs one line naming where Redis was looked
  for; the first success after it logs one line with the outage's length and how many log
  lines were held back; `on_change` feeds the `levers_redis_up` gauge.
* The flusher is the prober: after a failed pass it waits `failed()` seconds, doubling from
  `FIRST_DELAY_SECONDS` up to `MAX_DELAY_SECONDS`. dramatiq's consumers reconnect on their own
  (every `dramatiq_restart_delay`, 3 s); whichever connection comes back first says so
  (`succeeded()` from the connection hook), so "back" is not late by a backoff.
* `ConnectionNoise` is a logging filter for dramatiq's records: those caused by a lost
  connection are dropped and counted (dramatiq itself is not patched). Any other record,
  including every record of our own loggers, passes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import dramatiq.errors
import redis

log = logging.getLogger("levers.redis")

FIRST_DELAY_SECONDS = 0.25
# Also bounds how late the flusher resumes cutting by time once Redis is back.
MAX_DELAY_SECONDS = 2.0

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    dramatiq.errors.BrokerConnectionError,
)
# dramatiq records that follow a connection error and say nothing more (format strings).
_FOLLOW_UPS = ("Restarting consumer in", "Retrying message")


def connection_error(exc: BaseException | None) -> BaseException | None:
    """`exc` or the error it was raised from, when that is a lost or refused connection."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, CONNECTION_ERRORS):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def describe_error(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).rstrip(".")


class RedisHealth:
    """Up/down state of Redis for one process; thread-safe."""

    def __init__(
        self,
        where: str,
        *,
        on_change: Callable[[bool], object] | None = None,
        first_delay: float = FIRST_DELAY_SECONDS,
        max_delay: float = MAX_DELAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.where = where
        self.on_change = on_change or (lambda up: None)
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.clock = clock
        self._lock = threading.Lock()
        self._up = True
        self._down_since = 0.0
        self._delay = 0.0
        self._held_back = 0
        self.on_change(True)

    @property
    def up(self) -> bool:
        return self._up

    def report(self, exc: BaseException) -> None:
        """A Redis call failed for lack of a connection: down, said once."""
        with self._lock:
            if not self._up:
                return
            self._up = False
            self._down_since = self.clock()
            self._delay = 0.0
            self._held_back = 0
        log.error(
            f"Redis unreachable at {self.where}: {describe_error(exc)}; retrying with backoff "
            f"up to {self.max_delay:g} s, quietly until it answers"
        )
        self.on_change(False)

    def failed(self, exc: BaseException) -> float:
        """The prober's attempt failed: report it; returns the seconds to wait before the next."""
        self.report(exc)
        with self._lock:
            self._delay = min(self.max_delay, self._delay * 2 if self._delay else self.first_delay)
            return self._delay

    def held_back(self) -> None:
        """A log line about the outage was dropped (counted in the line that says it is over)."""
        with self._lock:
            self._held_back += 1

    def succeeded(self) -> None:
        """A Redis call answered: up again, said once."""
        with self._lock:
            if self._up:
                return
            self._up = True
            outage, held = self.clock() - self._down_since, self._held_back
        log.warning(
            f"Redis is back at {self.where} after {outage:.1f} s "
            f"({held} log lines about the outage held back)"
        )
        self.on_change(True)


class ConnectionNoise(logging.Filter):
    """Drops dramatiq's log records caused by a lost Redis connection; tells `health` instead."""

    def __init__(self, health: RedisHealth) -> None:
        super().__init__()
        self.health = health

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("dramatiq"):
            return True
        exc = _record_error(record)
        if exc is not None:
            self.health.report(exc)
            self.health.held_back()
            return False
        if not self.health.up and str(record.msg).startswith(_FOLLOW_UPS):
            self.health.held_back()
            return False
        return True


def _record_error(record: logging.LogRecord) -> BaseException | None:
    if record.exc_info and (found := connection_error(record.exc_info[1])) is not None:
        return found
    args = record.args if isinstance(record.args, tuple) else ()
    for arg in args:
        if isinstance(arg, BaseException) and (found := connection_error(arg)) is not None:
            return found
    return None


def install(health: RedisHealth, logger: logging.Logger | None = None) -> ConnectionNoise:
    """Put the filter first on every handler of `logger` (the root logger by default), so a
    dropped record is not formatted (nor its numbers masked) for nothing."""
    noise = ConnectionNoise(health)
    for handler in (logger or logging.getLogger()).handlers:
        handler.filters.insert(0, noise)
    return noise
