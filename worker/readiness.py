"""What `/readyz` of `levers-worker` checks: Redis answers, Levers gives us a token, and a
worker consumes the namespace (its processes have started polling: a dramatiq heartbeat).

Wrong Levers credentials are the commonest first-hour mistake, and without a check they show
only later, as send retries and then dead letters. `levers-worker` makes one auth call at
start-up (`AuthCheck.check`), says in one line which URL answered what, and keeps running:
`/readyz` answers 503 with the same reason until a token can be had, so a fixed secret (or a
Levers account put right) needs no restart, and an orchestrator keeps traffic away meanwhile.
Failed checks are repeated at most every `retry_seconds`, however often `/readyz` is asked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from worker.connection import describe
from worker.errors import LeversAuthError
from worker.levers import AUTH_PATH, TokenProvider
from worker.presence import no_worker_warning
from worker.redis_health import describe_error
from worker.settings import Settings

log = logging.getLogger("levers.readiness")

AUTH_RETRY_SECONDS = 5.0


def auth_problem(exc: LeversAuthError, auth_url: str) -> str:
    """One line: the auth URL and its HTTP status (or why there was none)."""
    if exc.response is not None:
        return f"POST {auth_url} answered HTTP {exc.response.status_code}"
    return f"POST {auth_url} failed: {exc}"


class AuthCheck:
    """Whether a Levers token can be had, asked of the auth endpoint at most every few seconds."""

    def __init__(
        self,
        tokens: TokenProvider,
        base_url: str,
        *,
        hint: str = "",
        retry_seconds: float = AUTH_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tokens = tokens
        self.auth_url = base_url + AUTH_PATH
        self.hint = hint
        self.retry_seconds = retry_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._problem: str | None = None
        self._next_try = 0.0

    def check(self) -> str | None:
        """None when a token can be had; else why not (logged once per change)."""
        with self._lock:
            if self._problem is not None and self.clock() < self._next_try:
                return self._problem
            try:
                self.tokens.get()
            except LeversAuthError as exc:
                problem = auth_problem(exc, self.auth_url)
                if problem != self._problem:
                    log.error(
                        f"Levers credentials do not work: {problem}{self.hint}; the worker keeps "
                        "running and /readyz answers 503 until a token can be had"
                    )
                self._problem, self._next_try = problem, self.clock() + self.retry_seconds
                return problem
            if self._problem is not None:
                log.warning(f"Levers credentials work again: POST {self.auth_url} gave a token")
            self._problem = None
            return None


class Readiness:
    """The `/readyz` verdict: None when ready, else the first reason it is not."""

    def __init__(self, client: redis.Redis, settings: Settings, auth: AuthCheck) -> None:
        self.client = client
        self.settings = settings
        self.where = describe(settings)
        self.auth = auth

    def __call__(self) -> str | None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            return f"Redis at {self.where} does not answer ({describe_error(exc)})"
        problem = self.auth.check()
        if problem is not None:
            return f"no Levers token: {problem}"
        try:
            if no_worker_warning(self.client, self.settings) is not None:
                return "the worker processes are not polling the queue yet"
        except redis.RedisError as exc:
            return f"Redis at {self.where} does not answer ({describe_error(exc)})"
        return None
