"""Redis goes away under a running worker and comes back: one line each way, no traceback,
`levers_redis_up` and /readyz say so, and contacts flow again afterwards."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from producers.api import Producer
from tests.integration.conftest import CLIENT_ID, CLIENT_SECRET
from tests.servers import RedisServer, free_port, wait_for
from tests.workers import WorkerProcess
from worker.sandbox import Sandbox
from worker.settings import Settings

pytestmark = pytest.mark.integration

# The outage is the scenario, not a wait for work: longer than dramatiq's consumer restart
# delay (3 s, see worker/redis_health.py), so that every consumer fails, waits and fails again
# while Redis is away, and "one line each way" is held against repeated failures.
OUTAGE_SECONDS = 4.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone: it is stopped halfway through."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


def gauge(port: str, name: str) -> float | None:
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return None


def test_an_outage_is_two_lines_a_gauge_and_readyz(
    own_redis: RedisServer, sandbox: Sandbox, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEVERS_", "PROMETHEUS_"))}
    port = str(free_port())
    env.update(
        REDIS_URL=own_redis.url,
        LEVERS_NAMESPACE=f"outage-{uuid.uuid4().hex[:8]}",
        LEVERS_BASE_URL=sandbox.url,
        LEVERS_CLIENT_ID=CLIENT_ID,
        LEVERS_CLIENT_SECRET=CLIENT_SECRET,
        LEVERS_BATCH_MAX_WAIT_SECONDS="0.5",
        LEVERS_DEFAULT_WINDOW="always",  # the contact below is sent whatever the hour
        LEVERS_METRICS_PORT=port,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", processes=1, threads=2).start()
    try:
        worker.wait_ready()
        readyz = f"http://127.0.0.1:{port}/readyz"
        wait_for(lambda: httpx.get(readyz, timeout=5).status_code == 200, 20, what="ready")
        assert gauge(port, "levers_redis_up") == 1

        before = len(worker.lines)
        own_redis.stop()
        wait_for(lambda: worker.saw("Redis unreachable at"), 20, what="the outage line")
        down = httpx.get(readyz, timeout=10)
        assert down.status_code == 503 and f"Redis at {own_redis.url} does not answer" in down.text
        wait_for(lambda: gauge(port, "levers_redis_up") == 0, 10, what="levers_redis_up 0")
        time.sleep(OUTAGE_SECONDS)  # the outage itself (see OUTAGE_SECONDS)
        own_redis.start()
        wait_for(lambda: worker.saw("Redis is back at"), 20, what="the recovery line")
        wait_for(lambda: httpx.get(readyz, timeout=5).status_code == 200, 20, what="ready again")
        wait_for(lambda: gauge(port, "levers_redis_up") == 1, 10, what="levers_redis_up 1")

        with worker._lock:
            window = [line for _, line in worker.lines[before:]]
        ours = [line for line in window if "levers.exposition" not in line]
        assert sum("Redis unreachable at" in line for line in ours) == 1, ours
        assert sum("Redis is back at" in line for line in ours) == 1, ours
        assert not any("Traceback" in line for line in window), window
        assert len(ours) <= 3, ours  # the two lines, and at most one stray

        producer = Producer(Settings.from_env(env))
        try:
            producer.enqueue_contact("+966501234567", first_name="After")
        finally:
            producer.close()
        wait_for(lambda: sandbox.stats().accepted_contacts == 1, 20, what="a send after it")
        assert worker.stop() == 0
    finally:
        worker.ensure_dead()
