"""The global pacer: one request budget shared through Redis by every worker on every host.

Rules (G4 of the design):

* requests: spaced at least `1 / LEVERS_MAX_REQUESTS_PER_SECOND` apart, so no 1 s window ever
  holds more than the limit and Levers sees a smooth stream, not bursts at window edges;
* contacts: no 60 s window holds more than `LEVERS_MAX_CONTACTS_PER_MINUTE` (a batch of n
  contacts spends n), kept over 61 s so that a request that reaches Levers late (a new
  connection, a loaded host: tens to hundreds of ms) cannot bring a later one into its minute;
* a 429 pauses every sender until its `Retry-After`.

A timeline at 5 requests/s (spacing (1000 + 40 ms jitter margin) / 5 = 208 ms): three workers
ask at 12:00:00.000, .010 and .020; they are given .000, .208 and .416 and each sleeps until its
time. A 429 at .450 with `Retry-After: 2` moves every later reservation to 12:00:02.450 or
after. With LEVERS_MAX_IN_FLIGHT, a sender also waits for one of that many slots (`Slots`).

Adaptive mode (LEVERS_ADAPTIVE_RATE=true) is for an account whose real limit is unknown: the
shared rate starts at LEVERS_MAX_REQUESTS_PER_SECOND, drops by half on a 429 or 503 (once a
second at most) and climbs back by LEVERS_ADAPTIVE_STEP per success whose latency is within
twice the running average, never below LEVERS_ADAPTIVE_MIN_REQUESTS_PER_SECOND. With a real
limit of 5/s and the default step, it settles into a saw-tooth between about 2.5 and 5 requests/s
with a 429 every fifty requests or so.

A caller that is given a later time *waits* for it (`Pacer.acquire` sleeps): a limit never
fails a send or burns a retry. Every time here is Redis's own (the scripts read `TIME`), and
callers are handed delays, never times: replicas whose host clocks disagree still share one
budget.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from worker.keys import Keys
from worker.scripting import Clock, load_script, time_arg

CONTACT_WINDOW_MARGIN_MS = 1000.0


@dataclass(frozen=True)
class Limits:
    requests_per_second: float = 5.0
    contacts_per_minute: int = 0  # 0 = no limit
    # A request reaches Levers a little after its reserved time, by a few ms that vary; without
    # a margin, that jitter can put limit + 1 requests in one second. Spacing requests by
    # (1000 + jitter_ms) / rate tolerates jitter_ms per second for jitter_ms / 1000 of the rate.
    jitter_ms: float = 40.0
    # Adaptive mode: the shared rate moves between `adaptive_floor` and requests_per_second.
    adaptive: bool = False
    adaptive_floor: float = 0.5
    adaptive_step: float = 0.05  # requests/s added per success with stable latency
    adaptive_factor: float = 0.5  # rate multiplied by this on a 429 or 503

    @property
    def request_spacing_ms(self) -> float:
        return (1000 + self.jitter_ms) / self.requests_per_second

    @property
    def contact_window_ms(self) -> float:
        # The jitter margin above is per request spacing; one minute's budget is a few batches,
        # so one late arrival (a first request opens its connection after its slot) can put the
        # next minute's first batch inside it. A second's margin costs 1.7 % of the limit.
        return 60_000 + CONTACT_WINDOW_MARGIN_MS


class Pacer:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        limits: Limits,
        clock: Clock | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.keys = keys
        self.limits = limits
        self.clock = clock
        self._sleep = sleep or threading.Event().wait
        self._client = client
        self._acquire = load_script(client, "acquire")
        self._pause = load_script(client, "pause")
        self._adapt = load_script(client, "adapt")

    def reserve(self, cost: int) -> float:
        """Reserve a send time for a request of `cost` contacts; returns the seconds from now
        until then."""
        delay_ms = self._acquire(
            keys=[self.keys.rate, self.keys.contact_rate, self.keys.pause, self.keys.adaptive],
            args=[
                time_arg(self.clock),
                uuid.uuid4().hex,
                cost,
                1,
                self.limits.request_spacing_ms,
                self.limits.contacts_per_minute,
                self.limits.contact_window_ms,
                int(self.limits.adaptive),
                self.limits.jitter_ms,
            ],
        )
        return int(delay_ms) / 1000

    def acquire(self, cost: int) -> float:
        """Wait until a request of `cost` contacts may leave; returns the seconds waited."""
        waited = 0.0
        while True:
            delay = self.reserve(cost)
            if delay > 0:
                self._sleep(delay)
                waited += delay
            # A 429 elsewhere while we slept moves everyone back: take a new place.
            if self.paused_for() <= 0:
                return waited

    def observe(self, status: int | None, latency_seconds: float) -> float | None:
        """Feed a request's outcome to adaptive mode; returns the new shared rate (None: off)."""
        if not self.limits.adaptive:
            return None
        if status is not None and 200 <= status < 300:
            outcome = "ok"
        elif status in (429, 503):
            outcome = "throttled"
        else:
            return None
        rate = self._adapt(
            keys=[self.keys.adaptive],
            args=[
                time_arg(self.clock),
                outcome,
                int(latency_seconds * 1000),
                self.limits.adaptive_floor,
                self.limits.requests_per_second,
                self.limits.adaptive_step,
                self.limits.adaptive_factor,
            ],
        )
        return float(rate)

    def pause(self, seconds: float) -> float:
        """Pause every sender for `seconds` from now (extends, never shortens); returns the
        seconds of pause now in force."""
        left = self._pause(keys=[self.keys.pause], args=[time_arg(self.clock), int(seconds * 1000)])
        return int(left) / 1000

    def paused_for(self) -> float:
        """Seconds left of the shared 429 pause (0 when none)."""
        if self.clock is not None:  # a test's clock: compare with the stored time
            raw = self._client.get(self.keys.pause)
            return max(0.0, int(raw) / 1000 - self.clock()) if raw else 0.0
        return max(0, int(self._client.pttl(self.keys.pause))) / 1000


class Slots:
    """At most `limit` requests on the wire at once across every replica (0 = no cap).

    A holder that dies keeps its slot only until its lease ends; a waiter polls, never longer
    than until the earliest lease would end and never more often than every `poll` seconds.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        limit: int,
        lease_seconds: float,
        clock: Clock | None = None,
        sleep: Callable[[float], object] | None = None,
        poll: float = 0.02,
    ) -> None:
        self.keys = keys
        self.limit = limit
        self.lease_ms = int(lease_seconds * 1000)
        self.clock = clock
        self.poll = poll
        self._sleep = sleep or threading.Event().wait
        self._client = client
        self._acquire = load_script(client, "slots")

    def try_acquire(self, owner: str) -> float:
        """0 when `owner` now holds a slot, else the seconds until one may free up."""
        if self.limit <= 0:
            return 0.0
        got = int(
            self._acquire(
                keys=[self.keys.slots],
                args=[time_arg(self.clock), owner, self.limit, self.lease_ms],
            )
        )
        return 0.0 if got == 1 else -got / 1000

    def acquire(self, owner: str) -> float:
        """Wait for a slot; returns the seconds waited."""
        waited = 0.0
        while (wait := self.try_acquire(owner)) > 0:
            pause = min(wait, self.poll)
            self._sleep(pause)
            waited += pause
        return waited

    def release(self, owner: str) -> None:
        if self.limit > 0:
            self._client.zrem(self.keys.slots, owner)
