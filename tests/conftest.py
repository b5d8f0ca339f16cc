from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker

from tests.servers import RedisServer
from worker.broker import BATCHES_QUEUE


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stub_broker() -> StubBroker:
    """A dramatiq broker in memory, for the tokens the outbox queues."""
    broker = StubBroker()
    broker.declare_queue(BATCHES_QUEUE)
    return broker


def tokens(broker: StubBroker) -> list[str]:
    """Take the send tokens the outbox put on the stub broker's batches queue."""
    queue = broker.queues[BATCHES_QUEUE]
    taken = []
    while not queue.empty():
        message = Message.decode(queue.get_nowait())
        taken.append(str(message.args[0]))
    return taken
