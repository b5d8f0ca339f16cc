"""Every script survives its own second run (G1): a reply lost after Redis ran the script makes
redis-py send the same EVALSHA again (worker/connection.py retries ten times), and that second
run must neither lose nor cut twice a contact, nor answer the caller differently.

Each test runs one operation through a client that loses the script's first reply
(tests/replay.py) on a real redis-server with a fixed clock, then counts every contact: in
exactly one batch record, pending or held, and as many as went in.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from dramatiq.brokers.stub import StubBroker

from tests.conftest import FakeClock, tokens
from tests.replay import Replays, evalsha_of, replaying_client
from tests.servers import RedisServer
from worker.buffers import AppendResult, BufferConfig, Buffers
from worker.contacts import Contact
from worker.eligibility import SEND_NOW, Hold
from worker.holds import Holds
from worker.keys import Keys
from worker.outbox import Outbox, OutboxConfig, Retry, Sent, Split
from worker.ratelimit import Limits, Pacer

KEYS = Keys("r")
BATCH = 50


@pytest.fixture
def replaying(
    redis_server: RedisServer, redis_client: redis.Redis
) -> Iterator[tuple[redis.Redis, Replays]]:
    # After redis_client, which flushes the database around each test.
    client, replays = replaying_client(redis_server.url)
    yield client, replays
    client.close()


def contact(i: int) -> Contact:
    return Contact(number=f"+9665012{i:05d}")


def numbers_in_batches(client: redis.Redis) -> Counter[str]:
    """Each number as often as batch records hold it."""
    seen: Counter[str] = Counter()
    for key in client.scan_iter(match=KEYS.batch("*")):
        raw = client.hget(key, "contacts")
        if raw is not None:
            seen.update(entry[1]["numberToCall"] for entry in json.loads(raw))
    return seen


def census(client: redis.Redis, batch_key: str, expected: int) -> None:
    """Every contact is in exactly one place (a batch, pending, held), none lost, and the
    stats count each cut contact once (a record written over would hold fewer)."""
    in_batches = numbers_in_batches(client)
    assert [n for n, count in in_batches.items() if count > 1] == []
    pending = {n.decode() for n in client.hkeys(KEYS.pending(batch_key))}
    held = {n.decode() for n in client.hkeys(KEYS.held(batch_key))}
    assert not pending & held and not pending & set(in_batches) and not held & set(in_batches)
    assert len(in_batches) + len(pending) + len(held) == expected
    assert client.zcard(KEYS.order(batch_key)) == len(pending)
    assert int(client.hget(KEYS.stats, "contacts_cut") or 0) == len(in_batches)


def append_all(
    client: redis.Redis, clock: FakeClock, numbers: range, *, hold: bool, max_size: int
) -> tuple[str, list[str]]:
    """Append through a client that loses nothing: the batch key, and the batches cut."""
    buffers = Buffers(client, KEYS, BufferConfig(batch_max_size=max_size), clock)
    verdict = Hold(int(clock() * 1000) + 1000, "not_before") if hold else SEND_NOW
    results = buffers.append_many([(contact(i), f"m{i}", verdict) for i in numbers])
    assert {r.status for r in results} == {"appended"}
    return contact(0).batch_key, [r.batch_id for r in results if r.batch_id is not None]


def test_a_release_run_twice_cuts_no_batch_twice_and_answers_the_same(
    redis_client: redis.Redis, replaying: tuple[redis.Redis, Replays], clock: FakeClock
) -> None:
    # 250 due holds, 120 released per call, 50 per batch: the first run cuts two batches and
    # leaves 20 pending; a second run would find 130 more due.
    batch_key, _ = append_all(redis_client, clock, range(250), hold=True, max_size=BATCH)
    clock.advance(2)
    client, replays = replaying
    holds = Holds(client, KEYS, BufferConfig(batch_max_size=BATCH), clock)
    replays.lose(evalsha_of(holds._release))
    released = holds.release_due(batch_key, limit=120)
    assert replays.lost == ["EVALSHA"]
    assert (released.released, released.expired, len(released.batch_ids)) == (120, 0, 2)
    for batch_id in released.batch_ids:
        assert redis_client.hget(KEYS.batch(batch_id), "size") == str(BATCH).encode()
    census(redis_client, batch_key, 250)
    assert redis_client.hlen(KEYS.held(batch_key)) == 130
    assert int(redis_client.hget(KEYS.stats, "contacts_released") or 0) == 120
    # The next call goes on from there, as if the first had answered.
    following = holds.release_due(batch_key, limit=120)
    assert (following.released, len(following.batch_ids)) == (120, 2)
    assert not set(following.batch_ids) & set(released.batch_ids)
    census(redis_client, batch_key, 250)
    assert redis_client.hlen(KEYS.held(batch_key)) == 10


@pytest.mark.parametrize("later", [70, 10], ids=["still-overdue", "due-later"])
def test_a_cut_due_run_twice_cuts_one_batch_and_answers_its_id(
    redis_client: redis.Redis, replaying: tuple[redis.Redis, Replays], clock: FakeClock, later: int
) -> None:
    # 50 overdue contacts, then `later` more: 70 overdue as well (a second run would cut
    # again), or 10 that came 1.5 s later and are not due yet (a second run would find the
    # key not due and answer that nothing was cut).
    batch_key, _ = append_all(redis_client, clock, range(BATCH), hold=False, max_size=1000)
    if later < BATCH:
        clock.advance(1.5)
    numbers = range(BATCH, BATCH + later)
    append_all(redis_client, clock, numbers, hold=False, max_size=1000)
    clock.advance(1 if later < BATCH else 3)
    client, replays = replaying
    buffers = Buffers(client, KEYS, BufferConfig(batch_max_size=BATCH), clock)
    replays.lose(evalsha_of(buffers._cut_due))
    result = buffers.cut_due(batch_key)
    assert replays.lost == ["EVALSHA"]
    # Without an id the caller queues no token, and the batch waits for the reaper's grace.
    assert result is not None and result[1] == BATCH
    assert redis_client.hget(KEYS.batch(result[0]), "size") == str(BATCH).encode()
    census(redis_client, batch_key, BATCH + later)
    assert redis_client.hlen(KEYS.pending(batch_key)) == later


@pytest.mark.parametrize("dedupe_seconds", [3600, 0])
def test_an_append_that_cut_run_twice_answers_its_cut(
    redis_client: redis.Redis,
    replaying: tuple[redis.Redis, Replays],
    clock: FakeClock,
    dedupe_seconds: int,
) -> None:
    batch_key, _ = append_all(redis_client, clock, range(BATCH - 1), hold=False, max_size=BATCH)
    client, replays = replaying
    config = BufferConfig(batch_max_size=BATCH, dedupe_window_seconds=dedupe_seconds)
    buffers = Buffers(client, KEYS, config, clock)
    replays.lose(evalsha_of(buffers._append))
    result = buffers.append(contact(BATCH - 1), "last")
    assert replays.lost == ["EVALSHA"]
    # Without the answer the caller queues no send token, and the batch waits for the
    # reaper's grace (15 s) instead of going at once.
    assert result.status == "appended" and result.cut_size == BATCH
    assert result.batch_id is not None
    assert redis_client.hget(KEYS.batch(result.batch_id), "size") == str(BATCH).encode()
    census(redis_client, batch_key, BATCH)
    assert int(redis_client.hget(KEYS.stats, "contacts_appended") or 0) == BATCH
    assert buffers.append(contact(BATCH - 1), "last") == AppendResult("redelivered", None, 0)


def test_a_round_trip_of_appends_sent_again_whole_appends_each_contact_once(
    redis_client: redis.Redis, replaying: tuple[redis.Redis, Replays], clock: FakeClock
) -> None:
    # One message's appends share a pipeline, which redis-py sends again whole when one
    # reply is lost: here the reply of the append that cuts, the third of five.
    batch_key, _ = append_all(redis_client, clock, range(BATCH - 3), hold=False, max_size=BATCH)
    client, replays = replaying
    buffers = Buffers(client, KEYS, BufferConfig(batch_max_size=BATCH), clock)
    replays.lose(evalsha_of(buffers._append, nth=3))
    numbers = range(BATCH - 3, BATCH + 2)
    results = buffers.append_many([(contact(i), f"m{i}", SEND_NOW) for i in numbers])
    assert replays.lost == ["EVALSHA"]
    assert [r.cut_size for r in results] == [0, 0, BATCH, 0, 0]
    assert [r.status for r in results] == ["redelivered"] * 2 + ["appended"] + ["redelivered"] * 2
    census(redis_client, batch_key, BATCH + 2)
    assert redis_client.hlen(KEYS.pending(batch_key)) == 2


def cut_and_queue(
    client: redis.Redis, clock: FakeClock, broker: StubBroker, size: int, start: int = 0
) -> str:
    numbers = range(start, start + size)
    _, [batch_id] = append_all(client, clock, numbers, hold=False, max_size=size)
    Outbox(client, KEYS, OutboxConfig(), broker, clock).queue(batch_id)
    assert tokens(broker) == [batch_id]
    return batch_id


def test_a_reaper_look_run_twice_still_hands_out_the_token(
    redis_client: redis.Redis,
    replaying: tuple[redis.Redis, Replays],
    clock: FakeClock,
    stub_broker: StubBroker,
) -> None:
    batch_id = cut_and_queue(redis_client, clock, stub_broker, 3)
    clock.advance(OutboxConfig().requeue_after_seconds)  # its token was lost
    client, replays = replaying
    outbox = Outbox(client, KEYS, OutboxConfig(), stub_broker, clock)
    due = outbox.due()
    assert due.members == [batch_id]
    replays.lose(evalsha_of(outbox._reap))
    # Answered `skip`, the batch would wait another requeue_after_seconds (300 s).
    assert outbox.reap(due.members) == [batch_id]
    assert replays.lost == ["EVALSHA"]
    assert tokens(stub_broker) == [batch_id]
    # Another worker's look at the same moment still skips it: one token, not two.
    assert Outbox(redis_client, KEYS, OutboxConfig(), stub_broker, clock).reap([batch_id]) == []


@pytest.mark.parametrize(
    "outcome",
    [
        Sent(201),
        Retry(5.0, 503, "busy"),
        Split(422, "bad", "invalid_contact", {1: "number refused"}, ((0, 2),)),
    ],
    ids=["sent", "retry", "split"],
)
def test_a_finish_run_twice_answers_as_the_first_did(
    redis_client: redis.Redis,
    replaying: tuple[redis.Redis, Replays],
    clock: FakeClock,
    stub_broker: StubBroker,
    outcome: Sent | Retry | Split,
) -> None:
    batch_id = cut_and_queue(redis_client, clock, stub_broker, 3)
    client, replays = replaying
    outbox = Outbox(client, KEYS, OutboxConfig(), stub_broker, clock)
    claim = outbox.pick(batch_id, "owner-1")
    assert claim.verdict == "claimed"
    replays.lose(evalsha_of(outbox._finish))
    # None would read as a lost lease: a split's children would get no token and wait for
    # the reaper's grace (15 s).
    children = outbox.finish(claim, "owner-1", outcome)
    assert replays.lost == ["EVALSHA"]
    assert children is not None
    assert len(children) == (1 if isinstance(outcome, Split) else 0)
    assert tokens(stub_broker) == children
    stats = redis_client.hgetall(KEYS.stats)
    assert int(stats.get(b"contacts_sent", 0)) == (3 if isinstance(outcome, Sent) else 0)
    assert int(stats.get(b"contacts_dead", 0)) == (1 if isinstance(outcome, Split) else 0)
    assert redis_client.hlen(KEYS.dead) == (1 if isinstance(outcome, Split) else 0)
    # Another owner still finds the batch not its own.
    assert outbox.finish(claim, "owner-2", Sent(201)) is None


def test_a_pick_run_twice_answers_its_claim_and_claims_nothing_more(
    redis_client: redis.Redis,
    replaying: tuple[redis.Redis, Replays],
    clock: FakeClock,
    stub_broker: StubBroker,
) -> None:
    first = cut_and_queue(redis_client, clock, stub_broker, 3)
    clock.advance(1)  # the older of two ready batches is sent first
    second = cut_and_queue(redis_client, clock, stub_broker, 3, start=3)
    client, replays = replaying
    outbox = Outbox(client, KEYS, OutboxConfig(), stub_broker, clock)
    replays.lose(evalsha_of(outbox._pick))
    claim = outbox.pick(first, "owner-1")
    assert replays.lost == ["EVALSHA"]
    # A second claim would leave the first batch claimed by nobody until its lease ran out
    # (120 s), with one attempt spent.
    assert (claim.verdict, claim.batch_id, claim.attempts) == ("claimed", first, 1)
    assert len(claim.contacts) == 3
    assert outbox.batch(second)["state"] == "queued"
    assert outbox.batch(second)["attempts"] == "0"
    assert outbox.in_flight().batches == {"cut": 0, "queued": 1, "claimed": 1, "sending": 0}
    # The next owner gets the other batch.
    assert outbox.pick(first, "owner-2").batch_id == second


def test_a_rate_reservation_run_twice_keeps_its_place(
    redis_client: redis.Redis, replaying: tuple[redis.Redis, Replays], clock: FakeClock
) -> None:
    client, replays = replaying
    pacer = Pacer(client, KEYS, Limits(requests_per_second=5), clock)
    replays.lose(evalsha_of(pacer._acquire))
    # Counted against itself, the reservation moved one spacing (208 ms) later.
    assert pacer.reserve(1) == 0.0
    assert replays.lost == ["EVALSHA"]
    assert redis_client.zcard(KEYS.rate) == 1
    assert pacer.reserve(1) == pytest.approx(0.208)
