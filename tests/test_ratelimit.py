"""The concurrency cap shared through Redis, with a fake clock."""

from __future__ import annotations

import redis

from tests.conftest import FakeClock
from worker.keys import Keys
from worker.ratelimit import Slots


def test_slots_cap_holders_and_free_them_on_release_or_lease_end(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    slots = Slots(redis_client, Keys("r"), limit=2, lease_seconds=10, clock=clock)
    assert slots.try_acquire("a") == 0
    assert slots.try_acquire("b") == 0
    assert slots.try_acquire("c") == 10.0  # until a's lease would end
    slots.release("a")
    assert slots.try_acquire("c") == 0
    clock.advance(4)
    assert slots.try_acquire("d") == 6.0
    # b died holding its slot: it comes back when the lease ends.
    clock.advance(6)
    assert slots.try_acquire("d") == 0


def test_waiting_for_a_slot_polls_until_one_frees(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    slots = Slots(redis_client, Keys("r"), 1, lease_seconds=0.1, clock=clock, sleep=sleep)
    assert slots.acquire("a") == 0
    waited = slots.acquire("b")
    assert 0.09 <= waited <= 0.12 and all(s <= slots.poll for s in slept)


def test_no_limit_means_no_redis_state(redis_client: redis.Redis, clock: FakeClock) -> None:
    slots = Slots(redis_client, Keys("r"), limit=0, lease_seconds=10, clock=clock)
    assert all(slots.try_acquire(str(i)) == 0 for i in range(100))
    assert redis_client.exists(Keys("r").slots) == 0
