"""What the frequency caps keep per number is bounded: one sorted set, trimmed to the longest
cap period on every call and expiring with it (docs/calling-hours.md, "Caps"). A real
redis-server and the World of tests/test_holds.py (fixed clock)."""

from __future__ import annotations

import redis

from tests.test_holds import RIYADH, SAUDI, World, local, policy
from worker.policy.caps import DEFAULT_CAPS

ANYTIME = '[default]\nwindow = "always"\n'
DAY = 86_400


def test_a_numbers_call_record_expires_with_the_longest_cap_period(
    redis_client: redis.Redis,
) -> None:
    world = World(redis_client, policy(ANYTIME), max_size=1)
    world.at(RIYADH, "2026-12-02T10:00")
    world.accept(SAUDI)
    world.tick()
    assert world.sent_numbers() == [SAUDI]
    record = world.keys.calls(SAUDI)
    assert redis_client.zcard(record) == 1
    longest_ms = int(DEFAULT_CAPS.longest * 1000)
    assert longest_ms == 30 * DAY * 1000
    # Redis counts the TTL down in its own time; the test took less than a minute.
    assert longest_ms - 60_000 < redis_client.pttl(record) <= longest_ms


def test_calls_older_than_the_longest_period_are_trimmed(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy(ANYTIME), max_size=1)
    record = world.keys.calls(SAUDI)
    # One call every 8 days for a year: never over a cap, never more than the last 30 days kept.
    sizes = []
    for week in range(46):
        world.clock.now = local(RIYADH, "2026-01-04T10:00") + week * 8 * DAY
        world.accept(SAUDI, dedupe_key=f"call-{week}")
        world.tick()
        sizes.append(redis_client.zcard(record))
    assert len(world.sent) == 46
    assert max(sizes) == 4  # today's call and the three of the 30 days before it
    assert sizes[-1] == 4
