"""Fixtures for the integration tests: the sandbox over HTTP, real worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from producers.api import Producer
from tests.servers import RedisServer, free_port
from tests.workers import WorkerProcess
from worker.backlog import read_backlog, read_totals
from worker.buffers import Buffers, KeyStatus
from worker.keys import Keys
from worker.runtime import buffer_config
from worker.sandbox import Sandbox, SandboxConfig
from worker.settings import Settings

CLIENT_ID = "it-client"
CLIENT_SECRET = "it-secret-value"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as server:
        yield server


@pytest.fixture
def worker_env(
    redis_server: RedisServer, sandbox: Sandbox, redis_client: redis.Redis, tmp_path: Path
) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEVERS_", "PROMETHEUS_"))}
    env.update(
        {
            "REDIS_URL": redis_server.url,
            "LEVERS_NAMESPACE": f"it-{uuid.uuid4().hex[:8]}",
            "LEVERS_BASE_URL": sandbox.url,
            "LEVERS_CLIENT_ID": CLIENT_ID,
            "LEVERS_CLIENT_SECRET": CLIENT_SECRET,
            "LEVERS_BATCH_MAX_SIZE": "100",
            "LEVERS_BATCH_MAX_WAIT_SECONDS": "1",
            "LEVERS_MAX_REQUESTS_PER_SECOND": "200",
            # Calling hours are tested on their own (with fixed clocks): here every contact
            # may be called whatever the time of day the suite runs at.
            "LEVERS_DEFAULT_WINDOW": "always",
            "LEVERS_METRICS_PORT": str(free_port()),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        }
    )
    return env


@pytest.fixture
def settings(worker_env: dict[str, str]) -> Settings:
    return Settings.from_env(worker_env)


@pytest.fixture
def producer(settings: Settings) -> Iterator[Producer]:
    producer = Producer(settings)
    yield producer
    producer.close()


class State:
    """What a test looks at in Redis while real workers run: a read-only view."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.client = client
        self.keys = Keys(settings.namespace)
        self.buffers = Buffers(client, self.keys, buffer_config(settings))

    def pending_status(self) -> list[KeyStatus]:
        return self.buffers.pending_status()

    def due_keys(self) -> list[str]:
        return self.buffers.due().members

    def in_flight(self) -> dict[str, int]:
        """Batches per in-flight state, the states with none left out."""
        batches = read_backlog(self.client, self.keys).batches
        return {state: count for state, count in batches.items() if count}

    def stats(self) -> dict[str, int]:
        return read_totals(self.client, self.keys)


@pytest.fixture
def state(settings: Settings, redis_client: redis.Redis) -> State:
    return State(settings, redis_client)


@pytest.fixture
def start_worker(
    worker_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(processes: int = 1, threads: int = 4, **env: str) -> WorkerProcess:
        # Each supervisor has its own metrics port and directory, as two hosts would: on one
        # port the second would fail to start (and a test would run one worker, not two).
        own = {
            "LEVERS_METRICS_PORT": str(free_port())
            if started
            else worker_env["LEVERS_METRICS_PORT"],
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"metrics-{len(started)}"),
        }
        merged = {**worker_env, **own, **env}
        worker = WorkerProcess(
            merged, tmp_path / f"worker-{len(started)}.log", processes, threads
        ).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.ensure_dead()
