"""Redis connections, made in one place: a plain URL, or the primary found through Sentinel.

Every part (broker, store, producers, commands, the metrics endpoint) asks `connect` for its
client, so a deployment behind Sentinel needs nothing more than `REDIS_SENTINELS`. Through
Sentinel, redis-py finds the current primary on each new connection and drops connections to
an old one after a failover; our own code only sees connection errors while it happens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from redis.sentinel import Sentinel

from worker.settings import Settings

# A Redis that does not answer within these makes a command fail instead of hanging a thread.
SOCKET_CONNECT_TIMEOUT_SECONDS = 5.0
SOCKET_TIMEOUT_SECONDS = 30.0


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
    if on_connect is not None:
        options["redis_connect_func"] = on_connect
    if settings.redis_sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            settings.sentinel_addresses,
            sentinel_kwargs={
                "password": settings.redis_sentinel_password,
                "socket_timeout": options["socket_connect_timeout"],
            },
            password=settings.redis_password,
        )
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_master, **options
        )
        return client
    if settings.redis_password is not None:
        options.setdefault("password", settings.redis_password)
    return redis.Redis.from_url(settings.redis_url, **options)


def describe(settings: Settings) -> str:
    """Where Redis is, for messages: the URL without its password, or the sentinels."""
    if settings.redis_sentinels:
        return f"sentinels {settings.redis_sentinels} (primary {settings.redis_sentinel_master!r})"
    from urllib.parse import urlsplit

    parts = urlsplit(settings.redis_url)
    if parts.password:
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=f"***@{host}").geturl()
    return settings.redis_url
