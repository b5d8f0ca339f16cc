"""Held contacts on a real redis-server with a fixed clock: the calling policy decides when a
contact is accepted and again right before its request; the flusher releases what is due.

Times are written in the recipient's local time. Riyadh is UTC+3 all year; the Saudi preset
is Sunday-Thursday 09:00-21:00 (12:00-21:00 in Ramadan), closed on public holidays.
"""

from __future__ import annotations

import json
import random
import tomllib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis
from dramatiq.brokers.stub import StubBroker

from tests.conftest import FakeClock, tokens
from worker.aggregator import Aggregator, Flusher
from worker.backlog import QueuedContacts, read_backlog, read_totals
from worker.buffers import BufferConfig, Buffers
from worker.contacts import NUMBER_TYPES, ContactRules
from worker.deadletters import DeadLetters
from worker.eligibility import Eligibility
from worker.holds import Holds
from worker.keys import Keys
from worker.levers import AUTH_PATH, LeversClient
from worker.metrics import Metrics
from worker.outbox import Outbox, OutboxConfig
from worker.policy import CallingPolicy, parse_policy
from worker.ratelimit import Limits, Pacer
from worker.rejects import Rejects
from worker.sender import RetryPolicy, Sender

RIYADH = "Asia/Riyadh"
NEW_YORK = "America/New_York"
SAUDI = "+966501234567"
NYC = "+12125551234"
IDAHO = "+12085551234"  # Boise (Mountain) and the north of the state (Pacific)
FRANCE = "+33612345678"
INMARSAT = "+870772111111"  # valid, but no time zone is known for it
TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"


def local(zone: str, text: str, fold: int = 0) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def policy(text: str) -> CallingPolicy:
    return parse_policy(tomllib.loads(text))


class World:
    """Aggregator, flusher and sender of one worker, on real Redis, a fixed clock and a Levers
    that answers 201 and records what it was sent."""

    def __init__(
        self, client: redis.Redis, calling: CallingPolicy, *, max_size: int = 3, at: float = 0
    ) -> None:
        self.clock = FakeClock(at)
        self.client = client
        self.keys = Keys("h")
        self.broker = StubBroker()
        self.broker.declare_queue("levers.batches")
        config = BufferConfig(batch_max_size=max_size, batch_max_wait_seconds=2.0)
        self.buffers = Buffers(client, self.keys, config, self.clock)
        self.holds = Holds(client, self.keys, config, self.clock)
        self.outbox = Outbox(client, self.keys, OutboxConfig(), self.broker, self.clock)
        eligibility = Eligibility(calling)
        self.metrics = metrics = Metrics()
        every_type = ContactRules(number_types=frozenset(NUMBER_TYPES))
        self.aggregator = Aggregator(
            self.buffers,
            self.outbox,
            Rejects(client, self.keys, clock=self.clock),
            QueuedContacts(client, self.keys),
            metrics,
            every_type,
            eligibility,
        )
        self.flusher = Flusher(self.buffers, self.outbox, metrics, self.holds)
        self.sent: list[list[str]] = []

        def levers(request: httpx.Request) -> httpx.Response:
            if request.url.path == AUTH_PATH:
                return httpx.Response(200, json={"access_token": "opaque"})
            body = json.loads(request.content)
            self.sent.append([c["numberToCall"] for c in body["contacts"]])
            return httpx.Response(201)

        def sleep(seconds: float) -> None:
            self.clock.advance(seconds)

        self.pacer = Pacer(client, self.keys, Limits(requests_per_second=1), self.clock, sleep)
        self.sender = Sender(
            self.outbox,
            self.pacer,
            LeversClient(
                "https://levers.test", api_token="t", transport=httpx.MockTransport(levers)
            ),
            metrics,
            RetryPolicy(),
            rng=random.Random(1),
            eligibility=eligibility,
        )
        self.serial = 0

    def accept(self, number: str, **fields: Any) -> str:
        self.serial += 1
        contact_id = f"m{self.serial}"
        [result] = self.aggregator.handle({"number": number, **fields}, contact_id)
        assert result is not None, "rejected"
        return contact_id

    def at(self, zone: str, text: str) -> None:
        target = local(zone, text)
        assert target >= self.clock(), "the clock only moves forward"
        self.clock.now = target

    def tick(self) -> None:
        """One flusher pass, then every token sent, as the worker would."""
        self.flusher.run_once()
        while queued := tokens(self.broker):
            for batch_id in queued:
                self.sender.send(batch_id)

    def held(self) -> dict[str, tuple[str, float | None]]:
        return {h.number: (h.reason, h.release_at) for h in self.holds.entries()}

    def sent_numbers(self) -> list[str]:
        return [n for request in self.sent for n in request]


def test_a_window_that_opens_while_contacts_wait(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy('[default]\nwindow = "SA"\n'))
    world.at(RIYADH, "2026-12-02T08:00")  # a Wednesday, before opening
    for i in range(3):
        world.accept(f"+96650123456{i}")
    opening = local(RIYADH, "2026-12-02T09:00")
    assert set(world.held().values()) == {("window_closed", opening)}
    assert world.holds.counts()["window_closed"] == 3
    assert read_backlog(redis_client, world.keys).pending == 0
    world.at(RIYADH, "2026-12-02T08:59:59.999")
    world.tick()
    assert world.sent == []
    world.at(RIYADH, "2026-12-02T09:00")
    world.tick()
    assert world.sent == [["+966501234560", "+966501234561", "+966501234562"]]
    assert world.held() == {}
    assert read_totals(redis_client, world.keys)["contacts_released"] == 3


def test_a_range_that_crosses_midnight(redis_client: redis.Redis) -> None:
    night = policy(
        '[default]\ndays = ["mon-sun"]\nhours = ["22:00-02:00"]\ntime_zone = "Asia/Riyadh"\n'
    )
    world = World(redis_client, night, max_size=1)
    world.at(RIYADH, "2026-12-03T01:30")
    world.accept(SAUDI)
    world.tick()
    assert world.sent_numbers() == [SAUDI]
    world.at(RIYADH, "2026-12-03T02:00")
    world.accept("+966501234568")
    assert world.held() == {"+966501234568": ("window_closed", local(RIYADH, "2026-12-03T22:00"))}


@pytest.mark.parametrize(
    ("held_at", "opening", "utc_opening"),
    [
        # Spring forward: 02:00 EST becomes 03:00 EDT; the 09:00 opening is 13:00 UTC.
        ("2026-03-08T03:30", "2026-03-08T09:00", "2026-03-08T13:00:00+00:00"),
        # Fall back: 02:00 EDT becomes 01:00 EST; the 09:00 opening is 14:00 UTC.
        ("2026-11-01T01:30", "2026-11-01T09:00", "2026-11-01T14:00:00+00:00"),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_daylight_saving_changes_in_the_us(
    redis_client: redis.Redis, held_at: str, opening: str, utc_opening: str
) -> None:
    world = World(redis_client, policy('[default]\nwindow = "US"\n'), max_size=1)
    world.at(NEW_YORK, held_at)
    world.accept(NYC)
    [(reason, release)] = world.held().values()
    assert reason == "window_closed"
    assert release == local(NEW_YORK, opening) == datetime.fromisoformat(utc_opening).timestamp()
    world.clock.now = release - 0.001
    world.tick()
    assert world.sent == []
    world.clock.now = release
    world.tick()
    assert world.sent_numbers() == [NYC]


def test_a_number_in_two_zones_waits_for_both(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy('[default]\nwindow = "US"\n'), max_size=1)
    # 09:30 in Boise is 08:30 in the Pacific north of Idaho: not yet open there.
    world.at("America/Boise", "2026-12-02T09:30")
    world.accept(IDAHO)
    assert world.held() == {
        IDAHO: ("window_closed", local("America/Los_Angeles", "2026-12-02T09:00"))
    }


def test_ramadan_hours_and_a_saudi_public_holiday(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy('[default]\nwindow = "by_country"\n'), max_size=1)
    world.at(RIYADH, "2027-02-15T10:00")  # a Monday in Ramadan 1448 (Umm al-Qura)
    world.accept(SAUDI)
    assert world.held() == {SAUDI: ("window_closed", local(RIYADH, "2027-02-15T12:00"))}
    world.at(RIYADH, "2027-09-23T10:00")  # National Day, a Thursday
    world.accept("+966501234568")
    # Friday and Saturday are the weekend: the next opening is Sunday morning.
    assert world.held()["+966501234568"] == (
        "window_closed",
        local(RIYADH, "2027-09-26T09:00"),
    )


def test_a_window_that_closes_while_the_batch_waits_for_the_rate_limit(
    redis_client: redis.Redis,
) -> None:
    world = World(redis_client, policy('[default]\nwindow = "SA"\n'), max_size=2)
    world.at(RIYADH, "2026-12-03T20:59:58")  # Thursday: the weekend starts at 21:00
    world.pacer.reserve(1)  # another request took the slot; the next is one second away
    world.pacer.reserve(1)
    world.accept(SAUDI)
    world.accept("+966501234568")  # cut by size, to be sent after the two reserved slots
    world.tick()  # the sender sleeps on the fixed clock until 21:00:00 and looks again
    assert world.sent == []
    sunday = local(RIYADH, "2026-12-06T09:00")
    assert world.held() == {
        SAUDI: ("window_closed", sunday),
        "+966501234568": ("window_closed", sunday),
    }
    backlog = read_backlog(redis_client, world.keys)
    assert backlog.held == 2 and backlog.total == 2
    assert sum(backlog.batches.values()) == 0  # the emptied batch is finished
    world.at(RIYADH, "2026-12-06T09:00")
    world.tick()
    assert sorted(world.sent_numbers()) == sorted([SAUDI, "+966501234568"])


def test_expire_at_passing_while_held(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy('[default]\nwindow = "by_country"\n'), max_size=1)
    world.at("Europe/Paris", "2026-12-02T10:00")
    # No preset for France: held until the policy names one, but not beyond its expire_at.
    world.accept(FRANCE, expire_at="2026-12-02T10:30:00+01:00")
    assert world.held() == {
        FRANCE: ("no_window_for_country", local("Europe/Paris", "2026-12-02T10:30"))
    }
    world.at("Europe/Paris", "2026-12-02T10:30")
    world.tick()
    assert world.held() == {} and world.sent == []
    [letter] = DeadLetters(redis_client, world.keys).select()
    assert letter["reason"] == "expired" and letter["contact"]["numberToCall"] == FRANCE
    assert "no_window_for_country" in letter["detail"]


def test_not_before_waits_for_the_time_and_the_window(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy('[default]\nwindow = "SA"\n'), max_size=1)
    world.at(RIYADH, "2026-12-02T10:00")
    world.accept(SAUDI, not_before="2026-12-02T20:59:00+03:00")
    assert world.held() == {SAUDI: ("not_before", local(RIYADH, "2026-12-02T20:59"))}
    world.accept("+966501234568", not_before="2026-12-02T21:30:00+03:00")
    assert world.held()["+966501234568"] == ("not_before", local(RIYADH, "2026-12-03T09:00"))


def test_an_unknown_zone_is_held_until_an_operator_releases_it(
    redis_client: redis.Redis,
) -> None:
    world = World(redis_client, policy('[default]\nwindow = "SA"\n'), max_size=1)
    world.at(RIYADH, "2026-12-02T10:00")
    world.accept(INMARSAT)
    assert world.held() == {INMARSAT: ("unknown_time_zone", None)}
    world.clock.advance(86400)
    world.tick()
    assert world.sent == []
    [held] = world.holds.entries()
    assert world.holds.act(held, "release", note="checked: a ship in Riyadh's waters")
    world.tick()
    assert world.sent_numbers() == [INMARSAT]


def test_an_operator_may_give_the_zone_instead(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy('[default]\nwindow = "SA"\n'), max_size=1)
    world.at(RIYADH, "2026-12-02T08:00")
    world.accept(INMARSAT)
    [held] = world.holds.entries()
    assert world.holds.act(held, "release", time_zone=RIYADH)
    world.tick()  # released, then held again at send time: it is 08:00 in Riyadh
    assert world.sent == []
    assert world.held() == {INMARSAT: ("window_closed", local(RIYADH, "2026-12-02T09:00"))}
    world.at(RIYADH, "2026-12-02T09:00")
    world.tick()
    assert world.sent_numbers() == [INMARSAT]


def test_a_redelivered_message_never_makes_a_second_hold(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy('[default]\nwindow = "SA"\n'), max_size=1)
    world.at(RIYADH, "2026-12-02T08:00")
    [result] = world.aggregator.handle({"number": SAUDI}, "m1")
    assert result is not None and result.status == "appended"
    [again] = world.aggregator.handle({"number": SAUDI}, "m1")
    assert again is not None and again.status == "redelivered"
    assert world.holds.counts()["window_closed"] == 1
    world.at(RIYADH, "2026-12-02T09:00")
    world.tick()
    [again] = world.aggregator.handle({"number": SAUDI}, "m1")
    assert again is not None and again.status == "redelivered"
    world.tick()
    assert world.sent_numbers() == [SAUDI]


def test_a_later_message_for_a_held_number_replaces_it(redis_client: redis.Redis) -> None:
    world = World(redis_client, policy('[default]\nwindow = "SA"\n'), max_size=1)
    world.at(RIYADH, "2026-12-02T10:00")
    world.accept(SAUDI, first_name="Sara", not_before="2026-12-02T15:00:00+03:00")
    # The later message for the number wins: no not_before any more, so it goes now.
    [result] = world.aggregator.handle({"number": SAUDI, "first_name": "Sarah"}, "m2")
    assert result is not None and result.status == "merged"
    world.tick()
    assert world.held() == {} and world.sent_numbers() == [SAUDI]
    assert read_backlog(redis_client, world.keys).total == 0
