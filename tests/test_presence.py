"""A producer warns when no worker is consuming its namespace (producers and workers must share
REDIS_URL and LEVERS_NAMESPACE); a worker's heartbeat, not another producer's, silences it."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
import redis

from producers.api import Producer
from tests.servers import RedisServer
from worker.keys import Keys
from worker.presence import no_worker_warning
from worker.settings import Settings


def test_the_python_api_warns_once_without_a_worker(
    redis_server: RedisServer, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {"REDIS_URL": redis_server.url, "LEVERS_NAMESPACE": f"p-{uuid.uuid4().hex[:6]}"}
    )
    producer = Producer(settings)
    try:
        with caplog.at_level(logging.WARNING, "levers.producer"):
            producer.enqueue_contact("+966501234567")
            producer.enqueue_contact("+966501234568")  # within the minute: not said again
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1
        assert f"no levers-worker is consuming namespace {settings.namespace!r}" in warnings[0]
        assert "REDIS_URL and LEVERS_NAMESPACE" in warnings[0]
        # Its own enqueues left a producer's heartbeat: that does not count as a worker.
        assert no_worker_warning(redis_client, settings) is not None
        key = Keys(settings.namespace).dramatiq_heartbeats
        redis_client.zadd(key, {"a-worker-id": int(time.time() * 1000)})  # as dramatiq writes it
        assert no_worker_warning(redis_client, settings) is None
        stale = int(time.time() * 1000) - settings.heartbeat_timeout_ms - 5000
        redis_client.zadd(key, {"a-worker-id": stale})
        assert "the last one 20 s ago" in (no_worker_warning(redis_client, settings) or "")
    finally:
        producer.close()
