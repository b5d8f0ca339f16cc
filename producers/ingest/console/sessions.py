"""Console logins: a random cookie per login, its session kept in Redis (so every ingest
replica knows it, and a logout ends it everywhere), and a CSRF token per session.

The cookie is HttpOnly and SameSite=Strict (Secure when the request came over HTTPS); Redis
holds only the SHA-256 of it. Every form of the console carries the session's CSRF token, and
a POST without the right one is refused (403) before it does anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import redis

from worker.keys import Keys
from worker.scripting import as_text

COOKIE = "levers_console"
FLASH_SECONDS = 120


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    may_reveal: bool

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(
        self, client: redis.Redis, keys: Keys, seconds: int, reveal_users: frozenset[str]
    ) -> None:
        self.client = client
        self.keys = keys
        self.seconds = seconds
        self.reveal_users = reveal_users

    def start(self, user: str) -> str:
        """A new session for `user`; returns the cookie value."""
        cookie = secrets.token_urlsafe(32)
        record = {"user": user, "csrf": secrets.token_urlsafe(32)}
        self.client.set(self._key(cookie), json.dumps(record), ex=self.seconds)
        return cookie

    def get(self, cookie: str | None) -> Session | None:
        if not cookie or len(cookie) > 128:
            return None
        raw = self.client.get(self._key(cookie))
        if raw is None:
            return None
        record = json.loads(as_text(raw))
        user = str(record["user"])
        return Session(user, str(record["csrf"]), user in self.reveal_users)

    def end(self, cookie: str | None) -> None:
        if cookie and len(cookie) <= 128:
            self.client.delete(self._key(cookie))

    def flash(self, cookie: str, message: str) -> None:
        """Say `message` on the session's next page (the result of an action)."""
        self.client.set(self.keys.console_flash(_digest(cookie)), message, ex=FLASH_SECONDS)

    def take_flash(self, cookie: str) -> str | None:
        raw = self.client.getdel(self.keys.console_flash(_digest(cookie)))
        return None if raw is None else as_text(raw)

    def _key(self, cookie: str) -> str:
        return self.keys.console_session(_digest(cookie))


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()
