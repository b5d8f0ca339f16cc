"""The outbox's scripts against a real redis-server, with a fake clock: lease, pick, finish,
retries scheduled in Redis, the reaper, and the exact in-flight counters."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from dramatiq.brokers.stub import StubBroker

from tests.conftest import FakeClock, tokens
from worker.buffers import BufferConfig, Buffers
from worker.contacts import Contact
from worker.keys import Keys
from worker.outbox import Dead, InFlight, Outbox, OutboxConfig, Retry, Sent, Split

TEMPLATE_A = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
TEMPLATE_B = "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"


class Rooms:
    def __init__(
        self, client: redis.Redis, clock: FakeClock, broker: StubBroker, **outbox: Any
    ) -> None:
        keys = Keys("o")
        self.clock = clock
        self.broker = broker
        self.buffers = Buffers(client, keys, BufferConfig(batch_max_size=1), clock)
        self.outbox = Outbox(client, keys, OutboxConfig(**outbox), broker, clock)
        self.serial = 0

    def cut(self, template: str | None = None, size: int = 1) -> str:
        """A batch of `size` contacts, cut and queued as the aggregator would."""
        self.buffers.config = BufferConfig(batch_max_size=size)
        batch_id = None
        for _ in range(size):
            self.serial += 1
            contact = Contact(number=f"+9665012{self.serial:05d}", template_id=template)
            batch_id = self.buffers.append(contact, f"m{self.serial}").batch_id
        assert batch_id is not None
        self.outbox.queue(batch_id)
        return batch_id

    def state(self, batch_id: str) -> str:
        return self.outbox.batch(batch_id)["state"]


@pytest.fixture
def rooms(redis_client: redis.Redis, clock: FakeClock, stub_broker: StubBroker) -> Rooms:
    return Rooms(redis_client, clock, stub_broker, send_lease_seconds=10)


def test_queue_puts_a_token_on_the_queue_and_counts_the_batch(rooms: Rooms) -> None:
    batch_id = rooms.cut(size=1)
    assert tokens(rooms.broker) == [batch_id]
    assert rooms.state(batch_id) == "queued"
    assert rooms.outbox.in_flight() == InFlight(
        {"cut": 0, "queued": 1, "claimed": 0, "sending": 0},
        {"cut": 0, "queued": 1, "claimed": 0, "sending": 0},
    )


def test_lifecycle_lease_and_an_attempt_that_died_in_flight(rooms: Rooms) -> None:
    batch_id = rooms.cut()
    claim = rooms.outbox.pick(batch_id, "owner-1")
    assert claim.verdict == "claimed" and claim.attempts == 1 and claim.batch_id == batch_id
    assert claim.contacts[0][0] == "m1"
    assert rooms.outbox.pick(batch_id, "owner-2").verdict == "idle"  # nothing else is ready
    assert rooms.outbox.begin(claim, "owner-2").code == "lost"  # not its lease
    begun = rooms.outbox.begin(claim, "owner-1", decided_at=rooms.clock())
    assert begun.code == "send" and begun.now == rooms.clock()
    assert rooms.outbox.in_flight().batches["sending"] == 1
    # The lease runs out with the request unanswered: its outcome is unknown.
    rooms.clock.advance(10)
    due = rooms.outbox.due()
    assert due.members == [batch_id]
    assert rooms.outbox.reap(due.members) == [batch_id]
    unknown = rooms.outbox.pick(batch_id, "owner-2")
    assert unknown.verdict == "unknown"
    assert rooms.outbox.finish(unknown, "owner-2", Sent(201)) is None  # it owns nothing
    assert rooms.outbox.finish(unknown, "", Dead("unknown_outcome")) == []
    assert rooms.state(batch_id) == "dead"
    assert rooms.outbox.pick(batch_id, "owner-3").verdict == "idle"
    assert rooms.outbox.due().next_due is None
    assert sum(rooms.outbox.in_flight().batches.values()) == 0


def test_sent_keeps_no_copy_of_the_contacts_and_expires(
    rooms: Rooms, redis_client: redis.Redis
) -> None:
    batch_id = rooms.cut(size=3)
    claim = rooms.outbox.pick(batch_id, "o")
    assert rooms.outbox.finish(claim, "o", Sent(201)) == []
    record = rooms.outbox.batch(batch_id)
    assert record["state"] == "sent" and "contacts" not in record
    assert redis_client.ttl(rooms.outbox.keys.batch(batch_id)) > 0
    assert int(redis_client.hget(rooms.outbox.keys.stats, "contacts_sent") or 0) == 3
    assert sum(rooms.outbox.in_flight().contacts.values()) == 0


def test_a_retry_waits_in_redis_and_the_reaper_gives_it_a_token_when_due(rooms: Rooms) -> None:
    batch_id = rooms.cut()
    tokens(rooms.broker)
    claim = rooms.outbox.pick(batch_id, "o1")
    assert rooms.outbox.finish(claim, "o1", Retry(5.0, 503, "busy")) == []
    assert rooms.state(batch_id) == "queued"
    rooms.clock.advance(4.999)
    assert rooms.outbox.due().members == []
    assert rooms.outbox.pick(batch_id, "o2").verdict == "idle"  # not before it is due
    rooms.clock.advance(0.001)
    due = rooms.outbox.due()
    assert rooms.outbox.reap(due.members) == [batch_id]
    assert tokens(rooms.broker) == [batch_id]
    retry = rooms.outbox.pick(batch_id, "o2")
    assert retry.verdict == "claimed" and retry.attempts == 2
    assert retry.elapsed == pytest.approx(5.0)


def test_a_throttle_does_not_use_up_an_attempt(rooms: Rooms) -> None:
    batch_id = rooms.cut()
    for _ in range(5):
        claim = rooms.outbox.pick(batch_id, "o")
        assert claim.attempts == 1
        rooms.outbox.finish(claim, "o", Retry(1.0, 429, "slow down", throttled=True))
        rooms.clock.advance(1.0)
    assert int(rooms.outbox.batch(batch_id)["throttled"]) == 5


def test_a_cut_batch_whose_token_never_reached_the_queue_gets_one_after_the_grace(
    rooms: Rooms,
) -> None:
    rooms.buffers.config = BufferConfig(batch_max_size=1)
    batch_id = rooms.buffers.append(Contact(number="+966501234567"), "m").batch_id
    assert batch_id is not None  # cut, and the process died before queueing its token
    assert rooms.outbox.due().members == []
    rooms.clock.advance(rooms.outbox.config.grace_seconds)
    assert rooms.outbox.reap(rooms.outbox.due().members) == [batch_id]
    assert rooms.state(batch_id) == "queued"
    assert rooms.outbox.in_flight().batches == {"cut": 0, "queued": 1, "claimed": 0, "sending": 0}


def test_pick_serves_batch_keys_round_robin_oldest_first_within_a_key(rooms: Rooms) -> None:
    backlog = []
    for _ in range(6):
        backlog.append(rooms.cut(TEMPLATE_A))
        rooms.clock.advance(0.01)
    late = rooms.cut(TEMPLATE_B)
    picked = []
    for i in range(7):
        claim = rooms.outbox.pick("whatever", f"o{i}")
        assert claim.verdict == "claimed"
        picked.append(claim.batch_id)
        assert rooms.outbox.finish(claim, f"o{i}", Sent(201)) == []
    # The late template is served second, not after the whole backlog of the first.
    assert picked[1] == late
    assert [p for p in picked if p != late] == backlog
    assert rooms.outbox.pick("whatever", "o").verdict == "idle"


def test_split_makes_children_with_their_own_tokens_and_dead_letters(
    rooms: Rooms, redis_client: redis.Redis
) -> None:
    batch_id = rooms.cut(size=4)
    tokens(rooms.broker)
    claim = rooms.outbox.pick(batch_id, "o")
    split = Split(422, "bad", "invalid_contact", {1: "number refused"}, ((0, 2, 3),))
    [child] = rooms.outbox.finish(claim, "o", split) or []
    assert rooms.state(batch_id) == "split"
    assert tokens(rooms.broker) == [child]
    assert rooms.outbox.batch(child)["size"] == "3"
    assert rooms.outbox.in_flight().contacts == {"cut": 0, "queued": 3, "claimed": 0, "sending": 0}
    [letter] = redis_client.hvals(rooms.outbox.keys.dead)
    assert b'"detail":"number refused"' in letter and b'"at":' in letter


def test_finish_refuses_a_ready_set_that_is_not_the_batchs_own(rooms: Rooms) -> None:
    batch_id = rooms.cut(TEMPLATE_A)
    claim = rooms.outbox.pick(batch_id, "o")
    wrong = claim.__class__(**{**claim.__dict__, "batch_key": f"{TEMPLATE_B}:0"})
    with pytest.raises(redis.ResponseError, match="not the ready set"):
        rooms.outbox.finish(wrong, "o", Retry(1.0))
    assert rooms.state(batch_id) == "claimed"
