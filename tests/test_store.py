"""The batching Lua scripts against a real redis-server, with a fake clock."""

from __future__ import annotations

import json

import redis

from tests.conftest import FakeClock
from worker.contacts import Contact, batch_key
from worker.keys import Keys
from worker.store import BatchStore, StoreConfig

TEMPLATE_A = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
TEMPLATE_B = "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"


def make_store(client: redis.Redis, clock: FakeClock, **config: object) -> BatchStore:
    defaults: dict[str, object] = {"batch_max_size": 3, "batch_max_wait_seconds": 2.0}
    defaults.update(config)
    return BatchStore(client, Keys("t"), StoreConfig(**defaults), clock)  # type: ignore[arg-type]


def number(i: int) -> str:
    return f"+9665012{i:05d}"


def contact(i: int, **fields: object) -> Contact:
    return Contact(number=number(i), **fields)  # type: ignore[arg-type]


def sent_numbers(store: BatchStore, batch_id: str) -> list[str]:
    return [item[1]["numberToCall"] for item in json.loads(store.batch(batch_id)["contacts"])]


def test_size_cut_takes_exactly_max_size(redis_client: redis.Redis, clock: FakeClock) -> None:
    store = make_store(redis_client, clock)
    results = [store.append(contact(i), f"m{i}") for i in range(3)]
    assert [r.status for r in results] == ["appended"] * 3
    assert results[0].batch_id is None and results[1].batch_id is None
    cut = results[2]
    assert cut.batch_id is not None and cut.cut_size == 3
    record = store.batch(cut.batch_id)
    assert record["state"] == "cut" and record["trigger"] == "size"
    assert record["key"] == "default:0"
    assert sent_numbers(store, cut.batch_id) == [number(0), number(1), number(2)]
    assert store.pending_status() == []
    assert store.due_keys() == []


def test_time_cut_only_after_max_wait(redis_client: redis.Redis, clock: FakeClock) -> None:
    store = make_store(redis_client, clock)
    store.append(contact(1), "m1")
    clock.advance(1.0)
    store.append(contact(2), "m2")
    clock.advance(0.999)
    assert store.due_keys() == []
    assert store.cut_due("default:0") is None
    clock.advance(0.001)
    assert store.due_keys() == ["default:0"]
    cut = store.cut_due("default:0")
    assert cut is not None
    batch_id, size = cut
    assert size == 2
    assert store.batch(batch_id)["trigger"] == "time"
    # A second cutter racing for the same key finds nothing to do.
    assert store.cut_due("default:0") is None
    assert store.next_deadline() is None


def test_same_number_in_pending_batch_is_one_entry_later_fields_win(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store = make_store(redis_client, clock)
    store.append(contact(1, first_name="Sara"), "m1")
    clock.advance(1.5)
    merged = store.append(contact(1, first_name="Sarah", prompt_tags={"amount": "9"}), "m2")
    assert merged.status == "merged"
    # The deadline still follows the first arrival.
    clock.advance(0.5)
    batch_id, size = store.cut_due("default:0") or ("", 0)
    assert size == 1
    ((_, entry, _),) = json.loads(store.batch(batch_id)["contacts"])
    assert entry == {"numberToCall": number(1), "firstName": "Sarah", "promptTags": {"amount": "9"}}
    assert store.stats()["contacts_merged"] == 1


def test_batches_are_separated_by_template_and_update_existing(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store = make_store(redis_client, clock, batch_max_size=2)
    store.append(contact(1, template_id=TEMPLATE_A), "m1")
    store.append(contact(2, template_id=TEMPLATE_B), "m2")
    store.append(contact(3, template_id=TEMPLATE_A, update_existing=True), "m3")
    store.append(contact(4), "m4")
    assert sorted(s.batch_key for s in store.pending_status()) == sorted(
        [
            batch_key(TEMPLATE_A, False),
            batch_key(TEMPLATE_B, False),
            batch_key(TEMPLATE_A, True),
            batch_key(None, False),
        ]
    )
    result = store.append(contact(5, template_id=TEMPLATE_A), "m5")
    assert result.batch_id is not None
    assert sent_numbers(store, result.batch_id) == [number(1), number(5)]
    assert store.batch(result.batch_id)["key"] == batch_key(TEMPLATE_A, False)


def test_redelivered_message_is_not_appended_twice(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store = make_store(redis_client, clock)
    assert store.append(contact(1), "m1").status == "appended"
    assert store.append(contact(1), "m1").status == "redelivered"
    [status] = store.pending_status()
    assert status.pending == 1


def test_redelivery_is_recognised_with_dedupe_off_too(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store = make_store(redis_client, clock, dedupe_window_seconds=0)
    assert store.append(contact(1), "m1").status == "appended"
    assert store.append(contact(1), "m1").status == "redelivered"
    assert store.append(contact(2), "m2").status == "appended"
    # Without dedupe, the same number in a later batch is appended again.
    clock.advance(2)
    assert store.cut_due("default:0") is not None
    assert store.append(contact(1), "m3").status == "appended"


def test_one_key_per_contact_with_dedupe_on(redis_client: redis.Redis, clock: FakeClock) -> None:
    store = make_store(redis_client, clock, batch_max_size=10)
    for i in range(5):
        store.append(contact(i), f"m{i}")
    # pending hash, arrival zset, deadlines, stats, and one dedupe marker per contact
    assert redis_client.dbsize() == 4 + 5


def test_duplicate_within_window_is_dropped_across_batches(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store = make_store(redis_client, clock, batch_max_size=1, dedupe_window_seconds=60)
    first = store.append(contact(1), "m1")
    assert first.batch_id is not None
    assert store.append(contact(1), "m2").status == "duplicate"
    # A producer's own dedupe key decides instead of the number.
    assert store.append(contact(2, dedupe_key="evt-1"), "m3").status == "appended"
    assert store.append(contact(3, dedupe_key="evt-1"), "m4").status == "duplicate"


def test_oldest_age_and_deadline_move_after_a_partial_time_cut(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store = make_store(redis_client, clock, batch_max_size=2)
    # Lower the size after appending, as a redeploy with a smaller max size would.
    store.append(contact(1), "m1")
    clock.advance(0.5)
    store.config = StoreConfig(batch_max_size=1, batch_max_wait_seconds=2.0)
    store.append(contact(2), "m2")  # cuts 1 (size), contact 2 left pending
    [status] = store.pending_status()
    assert status.pending == 1 and status.oldest_age_seconds == 0.0
    assert store.next_deadline() == clock() + 2.0


def test_lifecycle_claim_finish_and_reaper(redis_client: redis.Redis, clock: FakeClock) -> None:
    store = make_store(redis_client, clock, batch_max_size=1, send_lease_seconds=10)
    batch_id = store.append(contact(1), "m1").batch_id
    assert batch_id is not None
    # Crash between cut and enqueue: the reaper finds it after the outbox grace.
    assert store.reap() == []
    clock.advance(store.config.outbox_grace_seconds)
    assert store.reap() == [batch_id]
    assert store.batch(batch_id)["state"] == "queued"

    claim = store.claim(batch_id, "owner-1")
    assert claim.verdict == "claimed" and claim.attempts == 1
    assert claim.contacts[0][0] == "m1"
    assert store.claim(batch_id, "owner-2").verdict == "busy"
    assert not store.begin(batch_id, "owner-2")
    assert store.begin(batch_id, "owner-1")
    # The lease runs out with the request unanswered: its outcome is unknown.
    clock.advance(10)
    assert store.reap() == [batch_id]
    unknown = store.claim(batch_id, "owner-2")
    assert unknown.verdict == "unknown"
    assert store.finish(batch_id, "owner-2", "sent", status=201) is None
    assert store.finish(batch_id, "", "dead", detail="unknown_outcome") == []
    assert store.batch(batch_id)["state"] == "dead"
    assert store.claim(batch_id, "owner-3").verdict == "dead"
    assert redis_client.zcard(store.keys.inflight) == 0


def test_finish_sent_expires_record(redis_client: redis.Redis, clock: FakeClock) -> None:
    store = make_store(redis_client, clock, batch_max_size=1)
    batch_id = store.append(contact(1), "m1").batch_id
    assert batch_id is not None and store.mark_queued(batch_id)
    assert store.claim(batch_id, "o").verdict == "claimed"
    assert store.finish(batch_id, "o", "sent", status=201, sent=1) == []
    assert store.batch(batch_id)["state"] == "sent"
    assert "contacts" not in store.batch(batch_id)  # no copy of every contact kept
    assert redis_client.ttl(store.keys.batch(batch_id)) > 0
    assert store.stats()["contacts_sent"] == 1
    assert store.claim(batch_id, "o2").verdict == "sent"


def test_pick_serves_batch_keys_round_robin_oldest_first_within_a_key(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store = make_store(redis_client, clock, batch_max_size=1)
    backlog = []
    for i in range(6):
        backlog.append(store.append(contact(i, template_id=TEMPLATE_A), f"a{i}").batch_id)
        clock.advance(0.01)
    [late] = [store.append(contact(99, template_id=TEMPLATE_B), "b").batch_id]
    picked = []
    for i in range(7):
        claim = store.pick(hint="whatever", owner=f"o{i}")
        assert claim.verdict == "claimed"
        picked.append(claim.batch_id)
        assert store.finish(claim.batch_id, f"o{i}", "sent", status=201) == []
    # The late template is served second, not after the whole backlog of the first.
    assert picked[1] == late
    assert [p for p in picked if p != late] == backlog
    assert store.pick(hint="whatever", owner="o").verdict == "idle"


def test_a_retry_is_not_picked_before_it_is_due(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    store = make_store(redis_client, clock, batch_max_size=1)
    batch_id = store.append(contact(1), "m1").batch_id
    assert batch_id is not None
    claim = store.pick(batch_id, "o1")
    assert claim.batch_id == batch_id
    store.finish(batch_id, "o1", "retry", retry_at=clock() + 5, batch_key=claim.batch_key)
    clock.advance(4.999)
    assert store.pick(batch_id, "o2").verdict == "idle"
    clock.advance(0.001)
    assert store.pick(batch_id, "o2").verdict == "claimed"
