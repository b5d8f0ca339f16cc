"""How `connect` builds its clients (nothing is connected here: redis-py connects lazily)."""

from __future__ import annotations

from redis.sentinel import SentinelManagedSSLConnection

from worker.connection import REDIS_RETRIES, connect
from worker.sentinel import FailoverAwareSentinel, FollowingSentinelPool
from worker.settings import Settings


def test_through_sentinels_the_url_still_gives_database_tls_and_password() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "rediss://:s%40cret@ignored.example:6380/4",
            "REDIS_SENTINELS": "127.0.0.1:1,127.0.0.1:2",
            "REDIS_SENTINEL_MASTER": "main",
            "REDIS_SENTINEL_PASSWORD": "sentinel-secret",
        }
    )
    client = connect(settings)
    pool = client.connection_pool
    assert isinstance(pool, FollowingSentinelPool) and pool.service_name == "main"
    assert pool.connection_class is SentinelManagedSSLConnection
    kwargs = pool.connection_kwargs
    assert kwargs["db"] == 4 and kwargs["password"] == "s@cret"
    assert kwargs["retry"].get_retries() == REDIS_RETRIES
    sentinel = pool.sentinel_manager
    assert isinstance(sentinel, FailoverAwareSentinel)
    for one in sentinel.sentinels:
        options = one.connection_pool.connection_kwargs
        assert options["password"] == "sentinel-secret"
        assert options["retry"].get_retries() == 0  # a silent sentinel: ask the next one


def test_redis_password_wins_over_the_url() -> None:
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://:from-url@h:1/0",
            "REDIS_SENTINELS": "127.0.0.1:1",
            "REDIS_PASSWORD": "from-setting",
        }
    )
    assert connect(settings).connection_pool.connection_kwargs["password"] == "from-setting"


def test_a_plain_url_client_has_the_same_retries() -> None:
    client = connect(Settings.from_env({"REDIS_URL": "redis://127.0.0.1:1/2"}))
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["db"] == 2 and kwargs["retry"].get_retries() == REDIS_RETRIES
