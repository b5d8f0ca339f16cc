"""Holds read a page at a time, filtered before anything is decoded: what the console lists,
on a real redis-server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from producers.ingest.console import pages as console_pages
from producers.ingest.console.pages import Pages
from tests.conftest import FakeClock
from tests.servers import RedisServer
from worker.buffers import BufferConfig, Buffers
from worker.contacts import validate_contact
from worker.eligibility import Hold, Verdict
from worker.holds import Holds
from worker.keys import Keys
from worker.settings import Settings

A, B = str(uuid.UUID(int=1)), str(uuid.UUID(int=2))
DAY_MS = 2_000_000_000_000  # a release far ahead of the fake clock: nothing is due


def held(client: redis.Redis, keys: Keys, rows: list[tuple[str, str, str, int]]) -> Holds:
    """rows: (template, number, reason, release offset ms); held in that order."""
    clock = FakeClock()
    buffers = Buffers(client, keys, BufferConfig(batch_max_size=50), clock)
    appended: list[tuple[Any, str, Verdict]] = []
    for i, (template, number, reason, offset) in enumerate(rows):
        contact = validate_contact({"number": number, "template_id": template})
        appended.append((contact, f"c:{i}", Hold(DAY_MS + offset, reason)))
    for row in appended:  # each hold a second after the one before
        buffers.append_many([row])
        clock.advance(1)
    return Holds(client, keys, BufferConfig(batch_max_size=50))


@pytest.fixture
def keys(redis_client: redis.Redis) -> Keys:
    return Keys(f"t-{uuid.uuid4().hex[:6]}")


def test_pages_filter_by_reason_and_key_and_name_each_rank(
    redis_client: redis.Redis, keys: Keys
) -> None:
    holds = held(
        redis_client,
        keys,
        [
            (A, "+966500000001", "window_closed", 3),
            (B, "+966500000002", "not_before", 2),
            (A, "+966500000003", "not_before", 1),
            (B, "+966500000004", "window_closed", 0),
        ],
    )
    everything, after = holds.page(0, 10)
    assert [h.contact_id for _, h in everything] == ["c:0", "c:1", "c:2", "c:3"]
    assert [rank for rank, _ in everything] == [0, 1, 2, 3] and after == 10
    by_reason, _ = holds.page(0, 10, reason="not_before")
    assert [(r, h.contact_id) for r, h in by_reason] == [(1, "c:1"), (2, "c:2")]
    by_key, _ = holds.page(0, 10, batch_key=f"{A}:0")
    assert [h.contact_id for _, h in by_key] == ["c:0", "c:2"]
    # One key's own index is in release order.
    released_first, _ = holds.key_page(f"{A}:0", 0, 10)
    assert [h.contact_id for _, h in released_first] == ["c:2", "c:0"]
    narrowed, _ = holds.key_page(f"{A}:0", 0, 10, reason="window_closed")
    assert [h.contact_id for _, h in narrowed] == ["c:0"]
    found = holds.find(int(everything[1][1].since * 1000), "c:1")
    assert found is not None and found.number == "+966500000002"
    assert holds.find(int(everything[1][1].since * 1000), "c:0") is None


def test_a_filtered_list_stops_at_its_budget_and_says_where_to_go_on(
    redis_client: redis.Redis, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = f"t-{uuid.uuid4().hex[:6]}"
    keys = Keys(namespace)
    rows = [(A, f"+9665000{i:05d}", "window_closed", i) for i in range(30)]
    rows.append((A, "+966500099999", "not_before", 99))
    held(redis_client, keys, rows)
    monkeypatch.setattr(console_pages, "SCAN_BUDGET", 10)
    monkeypatch.setattr(console_pages, "CHUNK", 5)
    settings = Settings.from_env({"REDIS_URL": redis_server.url, "LEVERS_NAMESPACE": namespace})
    pages = Pages(settings, redis_client)
    first = pages.held(reason="not_before")
    assert first.rows == [] and first.scanned == 10 and first.next_start == 10
    seen, start = [], 0
    while start is not None:
        listing = pages.held(reason="not_before", start=start)
        seen += [h.contact_id for h in listing.rows]
        start = listing.next_start
    assert seen == ["c:30"]
    unfiltered = pages.held()
    assert len(unfiltered.rows) == 10 and unfiltered.next_start == 10  # the budget
