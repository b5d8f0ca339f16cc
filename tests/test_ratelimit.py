"""The concurrency cap and adaptive mode, shared through Redis, with a fake clock."""

from __future__ import annotations

import pytest
import redis

from tests.conftest import FakeClock
from worker.keys import Keys
from worker.ratelimit import Limits, Pacer, Slots


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


def test_adaptive_rate_rises_additively_and_falls_multiplicatively(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    limits = Limits(requests_per_second=10, adaptive=True, adaptive_floor=1, adaptive_step=0.5)
    pacer = Pacer(redis_client, Keys("r"), limits, clock)
    assert pacer.observe(429, 0) == 5.0  # starts at the ceiling, halves
    assert pacer.observe(503, 0) == 5.0  # a second signal within a second is the same burst
    assert pacer.observe(201, 0.1) == 5.5
    assert pacer.observe(201, 0.1) == 6.0
    assert pacer.observe(201, 0.5) == 6.0  # latency jumped: hold, do not climb
    clock.advance(1)
    assert pacer.observe(429, 0) == 3.0
    for _ in range(3):
        clock.advance(1)
        pacer.observe(429, 0)
    assert pacer.observe(None, 0) is None  # no answer: no signal
    assert float(redis_client.hget(Keys("r").adaptive, "rate") or 0) == 1.0  # the floor
    for _ in range(40):
        pacer.observe(201, 0.1)
    assert float(redis_client.hget(Keys("r").adaptive, "rate") or 0) == 10.0  # the ceiling


def test_adaptive_rate_sets_the_spacing(redis_client: redis.Redis, clock: FakeClock) -> None:
    limits = Limits(requests_per_second=10, jitter_ms=0, adaptive=True, adaptive_floor=1)
    pacer = Pacer(redis_client, Keys("r"), limits, clock)
    assert [pacer.reserve(1) for _ in range(2)] == pytest.approx([0, 0.1])
    clock.advance(1)
    pacer.observe(429, 0)  # 10 -> 5 requests/s
    times = [pacer.reserve(1) for _ in range(3)]
    assert times == pytest.approx([0, 0.2, 0.4])


def test_adaptive_off_ignores_outcomes(redis_client: redis.Redis, clock: FakeClock) -> None:
    pacer = Pacer(redis_client, Keys("r"), Limits(requests_per_second=10), clock)
    assert pacer.observe(429, 0) is None
    assert redis_client.exists(Keys("r").adaptive) == 0


def test_spacing_that_is_not_a_whole_number_of_ms(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    pacer = Pacer(redis_client, Keys("r"), Limits(requests_per_second=3, jitter_ms=0), clock)
    times = [pacer.reserve(1) for _ in range(4)]
    # 333.3 ms apart, each rounded up to the next whole ms: never early.
    assert times == pytest.approx([0, 0.334, 0.667, 1.0], abs=1e-6)
