"""LEVERS_REDIS_MIN_REPLICAS: WAIT after the writes that matter, against real servers.

A primary with a replica (worker.local servers, no sentinels) for confirmed writes and for a
replica that stops answering (SIGSTOP); the tests' own primary, which has no replica, for
writes nobody can confirm.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from dramatiq.brokers.stub import StubBroker
from redis.client import Pipeline

from producers.api import Producer
from tests.conftest import FakeClock, tokens
from tests.sentinels import ReplicaSet
from tests.servers import RedisServer
from tests.test_aggregator import build
from tests.test_sender import Harness, answer
from worker.backlog import QueuedContacts, read_backlog
from worker.broker import CONTACTS_QUEUE, ReconnectWatch
from worker.buffers import BufferConfig, Buffers
from worker.contacts import Contact
from worker.deadletters import NOT_CONFIRMED, DeadLetters
from worker.durability import Durability
from worker.eligibility import SEND_NOW
from worker.errors import NotReplicatedError
from worker.keys import Keys
from worker.outbox import Outbox, OutboxConfig, Sent
from worker.settings import Settings

# Short, so that the writes nobody can confirm do not slow the suite down.
TIMEOUT_MS = 50


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaSet]:
    servers = ReplicaSet(Path(tmp_path_factory.mktemp("replicated")), sentinels=0).start()
    yield servers
    servers.stop()


@pytest.fixture
def primary(replicated: ReplicaSet) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(replicated.servers[0].url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@contextmanager
def stopped(server: RedisServer) -> Iterator[None]:
    """The replica is alive but does not answer: it confirms nothing until it goes on."""
    ReplicaSet.pause(server)
    try:
        yield
    finally:
        ReplicaSet.resume(server)


def incr_script(client: redis.Redis) -> Any:
    return client.register_script("return redis.call('INCR', KEYS[1])")


def test_a_confirmed_write_returns_its_reply(primary: redis.Redis) -> None:
    shortfalls: list[NotReplicatedError] = []
    durability = Durability(1, 5000, on_shortfall=shortfalls.append)
    assert durability.run_script(primary, incr_script(primary), ["n"], [], "test") == 1
    assert shortfalls == []


def test_a_write_nobody_confirms_stands_and_is_reported(redis_client: redis.Redis) -> None:
    shortfalls: list[NotReplicatedError] = []
    durability = Durability(1, TIMEOUT_MS, on_shortfall=shortfalls.append)
    with pytest.raises(NotReplicatedError) as raised:
        durability.run_script(redis_client, incr_script(redis_client), ["n"], [], "test")
    assert raised.value.result == 1 and raised.value.acked == 0 and raised.value.required == 1
    assert raised.value.operation == "test" and shortfalls == [raised.value]
    assert redis_client.get("n") == b"1"  # made on the primary all the same


def test_a_replica_that_stopped_answering_confirms_nothing(
    primary: redis.Redis, replicated: ReplicaSet
) -> None:
    durability = Durability(1, TIMEOUT_MS)
    script = incr_script(primary)
    with stopped(replicated.servers[1]), pytest.raises(NotReplicatedError) as raised:
        durability.run_script(primary, script, ["n"], [], "test")
    assert raised.value.result == 1
    assert durability.run_script(primary, script, ["n"], [], "test") == 2  # caught up


def test_off_by_default(redis_client: redis.Redis) -> None:
    durability = Durability()
    assert not durability.enabled
    assert durability.run_script(redis_client, incr_script(redis_client), ["n"], [], "t") == 1
    pipe = redis_client.pipeline(transaction=False)
    durability.add_wait(pipe)
    assert pipe.command_stack == []


def test_a_transaction_then_wait_is_all_or_nothing(primary: redis.Redis) -> None:
    durability = Durability(1, 5000)

    def fill(pipe: Pipeline) -> None:
        pipe.set("a", "1")
        pipe.incr("b")

    assert durability.transaction(primary, fill, "test") == [b"OK", 1]

    def refused_when_queued(pipe: Pipeline) -> None:
        pipe.set("c", "1")
        pipe.execute_command("SET", "d")  # wrong arity: refused before EXEC

    with pytest.raises(redis.ResponseError):
        durability.transaction(primary, refused_when_queued, "test")
    assert primary.exists("c") == 0  # the whole transaction was discarded

    def fails_when_run(pipe: Pipeline) -> None:
        pipe.set("e", "1")
        pipe.incr("a")
        pipe.hincrby("a", "f", 1)  # a string: fails inside EXEC, after the others ran

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        durability.transaction(primary, fails_when_run, "test")
    assert primary.get("e") == b"1"


def test_appends_are_made_and_the_shortfall_raised(redis_client: redis.Redis) -> None:
    buffers = Buffers(
        redis_client, Keys("d"), BufferConfig(batch_max_size=2), durability=Durability(1, 50)
    )
    contacts = [(Contact(number=f"+96650123{i:04d}"), f"m:{i}", SEND_NOW) for i in range(3)]
    with pytest.raises(NotReplicatedError) as raised:
        buffers.append_many(contacts)
    results = raised.value.result
    assert [r.status for r in results] == ["appended"] * 3
    assert results[1].batch_id is not None  # the second append cut a batch of two
    assert sum(k.pending for k in buffers.pending_status()) == 1


def test_an_unconfirmed_message_is_not_settled_and_its_batch_is_queued(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store, _, aggregator, _ = build(redis_client, clock)
    aggregator.buffers.durability = Durability(1, TIMEOUT_MS)
    queued = QueuedContacts(redis_client, store.keys)
    pipe = redis_client.pipeline()
    queued.count_in(pipe, "m1", 2)
    pipe.execute()
    payload = [{"number": "+966501234567"}, {"number": "+966501234568"}]
    with pytest.raises(NotReplicatedError):
        aggregator.handle(payload, "m1")
    # The batch the appends cut has its token; the message still counts as queued, so that
    # dramatiq's delivering it again is what settles it.
    assert len(store.queued()) == 1
    assert read_backlog(redis_client, store.keys).queued == 2
    aggregator.buffers.durability = Durability()
    assert [r.status for r in aggregator.handle(payload, "m1") if r] == ["redelivered"] * 2
    assert read_backlog(redis_client, store.keys).queued == 0


def test_a_batch_whose_sending_is_unconfirmed_is_not_sent(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    h = Harness(redis_client, clock, answer(201))
    h.outbox.durability = Durability(1, TIMEOUT_MS)
    batch_id = h.cut_batch()
    result = h.sender.send(batch_id)
    assert h.bodies == []  # no request left
    assert result.outcome == "retry" and result.retry_in == 1.0
    record = h.outbox.batch(batch_id)
    assert record["state"] == "queued" and record["attempts"] == "0"
    assert h.metrics.retries.labels("replication")._value.get() == 1
    # With replicas back, the next token sends it.
    h.outbox.durability = Durability()
    clock.advance(1.0)
    h.outbox.reap(h.outbox.due().members)
    [token] = tokens(h.broker)
    assert h.sender.send(token).outcome == "sent" and len(h.bodies) == 1


def test_an_unconfirmed_outcome_stands(redis_client: redis.Redis, clock: FakeClock) -> None:
    h = Harness(redis_client, clock, answer(201))
    batch_id = h.cut_batch()
    claim = h.outbox.pick(batch_id, "owner")
    assert h.outbox.begin(claim, "owner") is not None
    stubborn = Outbox(
        redis_client, h.keys, OutboxConfig(), StubBroker(), clock, Durability(1, TIMEOUT_MS)
    )
    assert stubborn.finish(claim, "owner", Sent(201)) == []
    assert h.state(batch_id) == "sent"


def producer_for(url: str, **env: str) -> Producer:
    return Producer(
        Settings.from_env(
            {
                "REDIS_URL": url,
                "LEVERS_NAMESPACE": "d",
                "LEVERS_REDIS_MIN_REPLICAS": "1",
                "LEVERS_REDIS_WAIT_TIMEOUT_MS": str(TIMEOUT_MS),
                **env,
            }
        )
    )


def queue_length(producer: Producer, client: redis.Redis) -> int:
    return int(client.llen(f"{producer.broker.namespace}:{CONTACTS_QUEUE}"))


def test_the_producer_reports_contacts_nobody_confirmed(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    producer = producer_for(redis_server.url)
    try:
        with pytest.raises(NotReplicatedError) as raised:
            producer.enqueue_contact("+966501234567")
        assert len(raised.value.result) == 1  # type: ignore[arg-type]
        assert "failover" in str(raised.value)
        assert queue_length(producer, redis_client) == 1  # enqueued on the primary
        rows = [{"number": f"+96650123{i:04d}"} for i in range(600)]
        result = producer.enqueue_contacts(rows)
    finally:
        producer.close()
    # The first round trip (500 rows) was made and is reported; the rest was not attempted.
    assert [i for i, _ in result.accepted] == list(range(500))
    assert result.unconfirmed == result.accepted
    assert [r.index for r in result.rejected] == list(range(500, 600))
    assert {r.reason for r in result.rejected} == {"replicas_unavailable"}
    assert "send these again later" in result.rejected[0].message
    assert queue_length(producer, redis_client) == 1 + 10
    assert read_backlog(redis_client, Keys("d")).queued == 501


def test_the_producer_with_a_replica_confirms_everything(
    replicated: ReplicaSet, primary: redis.Redis
) -> None:
    producer = producer_for(replicated.servers[0].url, LEVERS_REDIS_WAIT_TIMEOUT_MS="5000")
    try:
        producer.enqueue_contact("+966501234567")
        result = producer.enqueue_contacts([{"number": f"+96650123{i:04d}"} for i in range(600)])
    finally:
        producer.close()
    assert len(result.accepted) == 600 and result.unconfirmed == [] and result.rejected == []


def test_a_transaction_that_lost_its_script_is_counted_once(
    redis_server: RedisServer, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a failover can do to a producer: redis-py loads the scripts, the connection fails,
    and it runs the transaction again on a new primary without them."""
    flushed: list[bool] = []
    load_scripts = Pipeline.load_scripts

    def then_flush(self: Pipeline) -> None:
        load_scripts(self)
        if not flushed:
            flushed.append(True)
            self.immediate_execute_command("SCRIPT", "FLUSH")

    monkeypatch.setattr(Pipeline, "load_scripts", then_flush)
    producer = producer_for(redis_server.url, LEVERS_REDIS_MIN_REPLICAS="0")
    try:
        result = producer.enqueue_contacts([{"number": f"+96650123{i:04d}"} for i in range(120)])
    finally:
        producer.close()
    assert flushed and len(result.accepted) == 120
    assert queue_length(producer, redis_client) == 3
    assert read_backlog(redis_client, Keys("d")).queued == 120


def test_a_replay_keeps_the_records_nobody_confirmed(
    redis_server: RedisServer, redis_client: redis.Redis, clock: FakeClock
) -> None:
    dead = DeadLetters(redis_client, Keys("d"), clock)
    record = {
        "id": "b1:0",
        "reason": "unknown_outcome",
        "batch_key": "default:0",
        "contact": {"numberToCall": "+966501234567"},
    }
    redis_client.hset(dead.keys.dead, "b1:0", json.dumps(record))
    redis_client.zadd(dead.keys.dead_index, {"b1:0": 1})
    producer = producer_for(redis_server.url)
    try:
        result = dead.replay(list(dead.select()), producer.enqueue_contacts)
    finally:
        producer.close()
    assert result.replayed == [] and result.refused == [("b1:0", NOT_CONFIRMED)]
    assert dead.ids() == ["b1:0"]


class FakeConnection:
    """Only what ReconnectWatch reads of a redis-py connection."""

    def __init__(self, port: int) -> None:
        self.host, self.port = "127.0.0.1", port

    def on_connect(self) -> None:
        pass


def test_the_reconnect_watch_sees_a_new_primary() -> None:
    watch = ReconnectWatch()
    first, second = FakeConnection(1), FakeConnection(1)
    watch(first)
    watch(second)
    assert not watch.take()  # two connections to one server
    watch(first)
    assert watch.take() and not watch.take()  # the same connection again: a reconnect
    watch(FakeConnection(2))
    assert watch.take()  # a new connection, to another server: a failover


def test_levers_enqueue_reports_rows_nobody_confirmed(
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from producers import importer

    for name, value in {
        "REDIS_URL": redis_server.url,
        "LEVERS_NAMESPACE": "d",
        "LEVERS_REDIS_MIN_REPLICAS": "1",
        "LEVERS_REDIS_WAIT_TIMEOUT_MS": str(TIMEOUT_MS),
    }.items():
        monkeypatch.setenv(name, value)
    rows = tmp_path / "contacts.csv"
    rows.write_text("number\n+966501234567\n+966501234568\n")
    assert importer.main([str(rows)]) == 1
    out = capsys.readouterr().out
    assert "2 accepted, 0 rejected" in out
    assert "2 accepted rows were not confirmed by enough Redis replicas" in out
