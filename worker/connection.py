"""Redis connections, made in one place: a plain URL, or the primary found through Sentinel.

Every part (broker, store, producers, commands, the metrics endpoint) asks `connect` for its
client, so a deployment behind Sentinel needs nothing more than `REDIS_SENTINELS`. Through
Sentinel, redis-py finds the current primary on each new connection and drops connections to
an old one after a failover; our own code only sees connection errors while it happens
(redis-py retries a failed command about ten times over a few seconds first). The client
also leaves a replaced primary while it is busy, which redis-py alone does not do: see
worker/sentinel.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.retry import Retry

from worker.sentinel import FailoverAwareSentinel, FollowingSentinelPool
from worker.settings import Settings

# A Redis that does not answer within these makes a command fail instead of hanging a thread.
SOCKET_CONNECT_TIMEOUT_SECONDS = 5.0
SOCKET_TIMEOUT_SECONDS = 30.0
# A command that cannot reach Redis is tried again this many times, waiting from 20 ms
# doubling to 1 s (half of each wait random) in between: 2.6-5.3 s in all. That rides out a
# failover an operator asks Sentinel for (about 1.2 s without a primary, measured), not one
# after a crash, which takes the sentinels' down-after-milliseconds (30 s by default) to
# notice; the caller then sees the error. A command whose reply was lost may have run: every
# Lua script answers its own second run as the first did (docs/guarantees.md, "Every script
# is safe to run twice"; tests/test_replays.py).
REDIS_RETRIES = 10


def redis_retry() -> Retry:
    return Retry(EqualJitterBackoff(cap=1.0, base=0.01), REDIS_RETRIES)


def no_retry() -> Retry:
    """For a client that must answer at once (a probe, a sentinel query): fail, do not wait."""
    return Retry(NoBackoff(), 0)


def connect(
    settings: Settings,
    *,
    on_connect: Callable[[Any], None] | None = None,
    **options: Any,
) -> redis.Redis:
    """A client for the primary. `on_connect` replaces redis-py's connection set-up hook
    (`redis_connect_func`) and must call `connection.on_connect()` itself."""
    options.setdefault("socket_connect_timeout", SOCKET_CONNECT_TIMEOUT_SECONDS)
    options.setdefault("socket_timeout", SOCKET_TIMEOUT_SECONDS)
    options.setdefault("health_check_interval", 30)
    # redis-py gives a client made from a URL retries by default, and one made through
    # Sentinel none: the same policy for both.
    options.setdefault("retry", redis_retry())
    if on_connect is not None:
        options["redis_connect_func"] = on_connect
    if settings.redis_sentinels:
        # The sentinels name the host; REDIS_URL still gives the database, TLS (rediss://)
        # and, when REDIS_PASSWORD is not set, the password.
        url = urlsplit(settings.redis_url)
        options.setdefault("db", int(url.path.strip("/") or 0))
        if url.scheme == "rediss":
            options.setdefault("ssl", True)
        # redis-py types Sentinel from 8.2 on and not before: called untyped in both.
        sentinel_class: Any = FailoverAwareSentinel
        sentinel = sentinel_class(
            settings.sentinel_addresses,
            sentinel_kwargs={
                "password": settings.redis_sentinel_password,
                "socket_timeout": options["socket_connect_timeout"],
                "socket_connect_timeout": options["socket_connect_timeout"],
                # A sentinel that does not answer: ask the next one at once.
                "retry": no_retry(),
            },
            password=settings.redis_password or (unquote(url.password) if url.password else None),
        )
        client: redis.Redis = sentinel.master_for(
            settings.redis_sentinel_master,
            connection_pool_class=FollowingSentinelPool,
            **options,
        )
        return client
    if settings.redis_password is not None:
        options.setdefault("password", settings.redis_password)
    return redis.Redis.from_url(settings.redis_url, **options)


def describe(settings: Settings) -> str:
    """Where Redis is, for messages: the URL without its password, or the sentinels."""
    if settings.redis_sentinels:
        return f"sentinels {settings.redis_sentinels} (primary {settings.redis_sentinel_master!r})"
    parts = urlsplit(settings.redis_url)
    if parts.password:
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=f"***@{host}").geturl()
    return settings.redis_url
