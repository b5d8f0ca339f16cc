"""The pending buffers' Lua scripts against a real redis-server, with a fake clock."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from tests.conftest import FakeClock
from worker.buffers import BufferConfig, Buffers
from worker.contacts import Contact, batch_key
from worker.eligibility import SEND_NOW
from worker.keys import Keys

TEMPLATE_A = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
TEMPLATE_B = "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"


def make_buffers(client: redis.Redis, clock: FakeClock, **config: Any) -> Buffers:
    defaults: dict[str, Any] = {"batch_max_size": 3, "batch_max_wait_seconds": 2.0}
    defaults.update(config)
    return Buffers(client, Keys("t"), BufferConfig(**defaults), clock)


def number(i: int) -> str:
    return f"+9665012{i:05d}"


def contact(i: int, **fields: Any) -> Contact:
    return Contact(number=number(i), **fields)


def batch_contacts(buffers: Buffers, batch_id: str) -> list[list[Any]]:
    raw = buffers.client.hget(buffers.keys.batch(batch_id), "contacts")
    assert raw is not None
    return list(json.loads(raw))


def sent_numbers(buffers: Buffers, batch_id: str) -> list[str]:
    return [item[1]["numberToCall"] for item in batch_contacts(buffers, batch_id)]


def record(buffers: Buffers, batch_id: str) -> dict[str, str]:
    raw = buffers.client.hgetall(buffers.keys.batch(batch_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


def gauge(buffers: Buffers, name: str) -> int:
    return int(buffers.client.hget(buffers.keys.gauges, name) or 0)


def stats(buffers: Buffers) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in buffers.client.hgetall(buffers.keys.stats).items()}


def test_size_cut_takes_exactly_max_size(redis_client: redis.Redis, clock: FakeClock) -> None:
    buffers = make_buffers(redis_client, clock)
    results = [buffers.append(contact(i), f"m{i}") for i in range(3)]
    assert [r.status for r in results] == ["appended"] * 3
    assert results[0].batch_id is None and results[1].batch_id is None
    cut = results[2]
    assert cut.batch_id is not None and cut.cut_size == 3
    cut_record = record(buffers, cut.batch_id)
    assert cut_record["state"] == "cut" and cut_record["trigger"] == "size"
    assert cut_record["key"] == "default:0"
    assert sent_numbers(buffers, cut.batch_id) == [number(0), number(1), number(2)]
    assert buffers.pending_status() == []
    assert buffers.due().members == []
    assert gauge(buffers, "pending") == 0
    assert gauge(buffers, "batches:cut") == 1 and gauge(buffers, "contacts:cut") == 3


def test_time_cut_only_after_max_wait(redis_client: redis.Redis, clock: FakeClock) -> None:
    buffers = make_buffers(redis_client, clock)
    buffers.append(contact(1), "m1")
    clock.advance(1.0)
    buffers.append(contact(2), "m2")
    assert gauge(buffers, "pending") == 2
    clock.advance(0.999)
    due = buffers.due()
    assert due.members == [] and due.next_due == pytest.approx(clock() + 0.001)
    assert buffers.cut_due("default:0") is None
    clock.advance(0.001)
    assert buffers.due().members == ["default:0"]
    cut = buffers.cut_due("default:0")
    assert cut is not None
    batch_id, size = cut
    assert size == 2
    assert record(buffers, batch_id)["trigger"] == "time"
    # A second cutter racing for the same key finds nothing to do.
    assert buffers.cut_due("default:0") is None
    assert buffers.due().next_due is None
    assert gauge(buffers, "pending") == 0


def test_same_number_in_pending_batch_is_one_entry_later_fields_win(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    buffers = make_buffers(redis_client, clock)
    buffers.append(contact(1, first_name="Sara"), "m1")
    clock.advance(1.5)
    merged = buffers.append(contact(1, first_name="Sarah", prompt_tags={"amount": "9"}), "m2")
    assert merged.status == "merged"
    # The deadline still follows the first arrival.
    clock.advance(0.5)
    batch_id, size = buffers.cut_due("default:0") or ("", 0)
    assert size == 1
    [[contact_id, entry, appended_ms]] = batch_contacts(buffers, batch_id)
    assert contact_id == "m2"
    assert entry == {"numberToCall": number(1), "firstName": "Sarah", "promptTags": {"amount": "9"}}
    assert appended_ms == int((clock() - 0.5) * 1000)
    assert stats(buffers)["contacts_merged"] == 1
    assert gauge(buffers, "pending") == 0


def test_batches_are_separated_by_template_and_update_existing(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    buffers = make_buffers(redis_client, clock, batch_max_size=2)
    buffers.append(contact(1, template_id=TEMPLATE_A), "m1")
    buffers.append(contact(2, template_id=TEMPLATE_B), "m2")
    buffers.append(contact(3, template_id=TEMPLATE_A, update_existing=True), "m3")
    buffers.append(contact(4), "m4")
    assert sorted(s.batch_key for s in buffers.pending_status()) == sorted(
        [
            batch_key(TEMPLATE_A, False),
            batch_key(TEMPLATE_B, False),
            batch_key(TEMPLATE_A, True),
            batch_key(None, False),
        ]
    )
    result = buffers.append(contact(5, template_id=TEMPLATE_A), "m5")
    assert result.batch_id is not None
    assert sent_numbers(buffers, result.batch_id) == [number(1), number(5)]
    assert record(buffers, result.batch_id)["key"] == batch_key(TEMPLATE_A, False)


def test_one_key_per_contact_with_dedupe_on(redis_client: redis.Redis, clock: FakeClock) -> None:
    buffers = make_buffers(redis_client, clock, batch_max_size=10)
    for i in range(5):
        buffers.append(contact(i), f"m{i}")
    # pending hash, arrival zset, deadlines, stats, gauges, and one dedupe marker per contact
    assert redis_client.dbsize() == 5 + 5


def test_duplicate_within_window_is_dropped_across_batches(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    buffers = make_buffers(redis_client, clock, batch_max_size=1, dedupe_window_seconds=60)
    first = buffers.append(contact(1), "m1")
    assert first.batch_id is not None
    assert buffers.append(contact(1), "m2").status == "duplicate"
    # A producer's own dedupe key decides instead of the number.
    assert buffers.append(contact(2, dedupe_key="evt-1"), "m3").status == "appended"
    assert buffers.append(contact(3, dedupe_key="evt-1"), "m4").status == "duplicate"
    # After the window the number may be called again.
    clock.advance(60)
    redis_client.delete(buffers.keys.dedupe("default:0", f"n:{number(1)}"))  # its TTL ran out
    assert buffers.append(contact(1), "m5").status == "appended"


def test_oldest_age_and_deadline_move_after_a_partial_time_cut(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    buffers = make_buffers(redis_client, clock, batch_max_size=2)
    # Lower the size after appending, as a redeploy with a smaller max size would.
    buffers.append(contact(1), "m1")
    clock.advance(0.5)
    buffers.config = BufferConfig(batch_max_size=1, batch_max_wait_seconds=2.0)
    buffers.append(contact(2), "m2")  # cuts 1 (size), contact 2 left pending
    [status] = buffers.pending_status()
    assert status.pending == 1 and status.oldest_age_seconds == 0.0
    assert buffers.due().next_due == clock() + 2.0


# -- redelivery: every status leaves what makes a second delivery a no-op -------------------

PATHS = ["appended", "merged", "duplicate"]


def setup_path(buffers: Buffers, path: str, keyed: bool) -> Contact:
    """Bring contact B (number 7, id "B") through `path`; returns B."""
    b = contact(7, dedupe_key="event-2" if keyed else None)
    if path == "appended":
        assert buffers.append(b, "B").status == "appended"
    elif path == "merged":
        a = contact(7, dedupe_key="event-1" if keyed else None)
        assert buffers.append(a, "A").status == "appended"
        assert buffers.append(b, "B").status == "merged"
    else:
        a = contact(7, dedupe_key="event-2" if keyed else None)
        assert buffers.append(a, "A").status == "appended"
        cut_all(buffers)
        assert buffers.append(b, "B").status == "duplicate"
    return b


def cut_all(buffers: Buffers) -> list[str]:
    assert isinstance(buffers.clock, FakeClock)
    buffers.clock.advance(buffers.config.batch_max_wait_seconds)
    cut = []
    for key in buffers.due().members:
        while (result := buffers.cut_due(key)) is not None:
            cut.append(result[0])
    return cut


@pytest.mark.parametrize("after_cut", [False, True], ids=["before-cut", "after-cut"])
@pytest.mark.parametrize("keyed", [False, True], ids=["number", "dedupe-key"])
@pytest.mark.parametrize("path", PATHS)
def test_a_redelivery_is_a_no_op_whatever_the_first_delivery_did(
    redis_client: redis.Redis, clock: FakeClock, path: str, keyed: bool, after_cut: bool
) -> None:
    buffers = make_buffers(redis_client, clock, batch_max_size=10)
    b = setup_path(buffers, path, keyed)
    before = stats(buffers)
    if after_cut:
        cut_all(buffers)
        before = stats(buffers)
    assert buffers.append(b, "B").status == "redelivered"
    after = stats(buffers)
    assert after == before, "a redelivery must count nothing (no duplicate, no append)"
    # Nothing was added to a buffer: no second entry, so no second call, for this number.
    pending = sum(s.pending for s in buffers.pending_status())
    assert pending == (0 if after_cut or path == "duplicate" else 1)


@pytest.mark.parametrize("after_cut", [False, True], ids=["before-cut", "after-cut"])
@pytest.mark.parametrize("path", ["appended", "merged"])
def test_a_redelivery_is_a_no_op_with_dedupe_off(
    redis_client: redis.Redis, clock: FakeClock, path: str, after_cut: bool
) -> None:
    buffers = make_buffers(redis_client, clock, batch_max_size=10, dedupe_window_seconds=0)
    b = setup_path(buffers, path, keyed=False)
    if after_cut:
        cut_all(buffers)
    before = stats(buffers)
    assert buffers.append(b, "B").status == "redelivered"
    assert stats(buffers) == before
    if after_cut:
        assert buffers.pending_status() == []
    # Without dedupe, the same number from another message is called again in a later batch.
    assert buffers.append(contact(7), "C").status in ("appended", "merged")


def test_the_double_dial_that_a_merge_used_to_leave_open(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    """A (event-1) pending; B (event-2, same number) merged; the batch is cut; B's message is
    delivered again. It must not be appended a second time (that was a second call)."""
    buffers = make_buffers(redis_client, clock, batch_max_size=10)
    buffers.append(contact(7, dedupe_key="event-1"), "A")
    assert buffers.append(contact(7, dedupe_key="event-2"), "B").status == "merged"
    [first] = cut_all(buffers)
    assert sent_numbers(buffers, first) == [number(7)]
    assert buffers.append(contact(7, dedupe_key="event-2"), "B").status == "redelivered"
    # And a new message for event-2 is a duplicate: that event was already called.
    assert buffers.append(contact(7, dedupe_key="event-2"), "B2").status == "duplicate"
    assert cut_all(buffers) == []


def test_a_chunk_is_idempotent_however_far_it_got(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    buffers = make_buffers(redis_client, clock, batch_max_size=10)
    chunk = [(contact(i), f"msg:{i}", SEND_NOW) for i in range(5)]
    buffers.append_many(chunk[:3])  # the worker died after three of five
    results = buffers.append_many(chunk)
    assert [r.status for r in results] == ["redelivered"] * 3 + ["appended"] * 2
    assert gauge(buffers, "pending") == 5
