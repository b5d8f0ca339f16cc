"""The sender's outcome handling: real Redis for state, an injected transport for Levers."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import httpx
import pytest
import redis
from dramatiq.brokers.stub import StubBroker

from tests.conftest import FakeClock, tokens
from worker.backlog import read_totals
from worker.buffers import BufferConfig, Buffers
from worker.contacts import Contact
from worker.deadletters import (
    INVALID_CONTACT,
    REJECTED_BY_LEVERS,
    RETRIES_EXHAUSTED,
    UNKNOWN_OUTCOME,
)
from worker.keys import Keys
from worker.levers import AUTH_PATH, LeversClient
from worker.metrics import Metrics
from worker.outbox import Outbox, OutboxConfig
from worker.ratelimit import Limits, Pacer
from worker.sender import CORRELATION_KEY, RetryPolicy, Sender, parse_retry_after

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
Handler = Callable[[httpx.Request], httpx.Response]


class Harness:
    def __init__(self, client: redis.Redis, clock: FakeClock, handler: Handler) -> None:
        self.clock = clock
        self.bodies: list[dict[str, object]] = []

        def recording(request: httpx.Request) -> httpx.Response:
            if request.url.path == AUTH_PATH:
                return httpx.Response(200, json={"access_token": "opaque"})
            self.bodies.append(json.loads(request.content))
            return handler(request)

        keys = Keys("s")
        self.keys = keys
        self.broker = StubBroker()
        self.broker.declare_queue("levers.batches")
        self.buffers = Buffers(client, keys, BufferConfig(batch_max_size=3), clock)
        self.outbox = Outbox(client, keys, OutboxConfig(), self.broker, clock)
        self.slept: list[float] = []

        def sleep(seconds: float) -> None:
            self.slept.append(seconds)
            clock.advance(seconds)

        self.pacer = Pacer(client, keys, Limits(requests_per_second=5), clock, sleep=sleep)
        self.metrics = Metrics()
        levers = LeversClient(
            "https://levers.test",
            client_id="id",
            client_secret="secret",
            transport=httpx.MockTransport(recording),
            clock=clock,
        )
        self.sender = Sender(
            self.outbox,
            self.pacer,
            levers,
            self.metrics,
            RetryPolicy(max_retries=2, max_elapsed_seconds=600),
            rng=random.Random(7),
        )

    def cut_batch(self, size: int = 3, **fields: object) -> str:
        self.buffers.config = BufferConfig(batch_max_size=size)
        result = None
        for i in range(size):
            contact = Contact(number=f"+96650123{i:04d}", metadata={"crm": i}, **fields)  # type: ignore[arg-type]
            result = self.buffers.append(contact, f"msg-{i}")
        assert result is not None and result.batch_id is not None
        self.outbox.queue(result.batch_id)
        tokens(self.broker)
        return result.batch_id

    def state(self, batch_id: str) -> str:
        return self.outbox.batch(batch_id)["state"]

    def stats(self) -> dict[str, int]:
        return read_totals(self.outbox.client, self.keys)

    def dead_letters(self) -> list[dict[str, object]]:
        raw = self.outbox.client.hgetall(self.keys.dead)
        return [json.loads(v) for v in raw.values()]


def answer(status: int, **headers: str) -> Handler:
    return lambda request: httpx.Response(status, headers=headers, json={})


def test_2xx_marks_batch_sent_with_documented_body(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    h = Harness(redis_client, clock, answer(201))
    batch_id = h.cut_batch(template_id=TEMPLATE, update_existing=True)
    assert h.sender.send(batch_id).outcome == "sent"
    [body] = h.bodies
    assert body["aiSettingsTemplateId"] == TEMPLATE and body["updateExisting"] is True
    contacts = body["contacts"]
    assert isinstance(contacts, list) and len(contacts) == 3
    # The correlation Levers echoes in its call-ended webhook: which contact, its dead-letter
    # id should the outcome be unknown (batch id and index), and when it was appended (ms).
    appended_ms = int(clock() * 1000)
    assert [c["metadata"] for c in contacts[:2]] == [
        {
            "crm": 0,
            CORRELATION_KEY: {
                "batch_id": batch_id,
                "contact_id": "msg-0",
                "index": 0,
                "at": appended_ms,
            },
        },
        {
            "crm": 1,
            CORRELATION_KEY: {
                "batch_id": batch_id,
                "contact_id": "msg-1",
                "index": 1,
                "at": appended_ms,
            },
        },
    ]
    assert h.state(batch_id) == "sent"
    # A redelivered send message for a sent batch does nothing.
    assert h.sender.send(batch_id).outcome == "skipped"
    assert len(h.bodies) == 1


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_status_schedules_retry_honouring_retry_after(
    redis_client: redis.Redis, clock: FakeClock, status: int
) -> None:
    h = Harness(redis_client, clock, answer(status, **{"Retry-After": "7"}))
    batch_id = h.cut_batch()
    result = h.sender.send(batch_id)
    assert result.outcome == "retry"
    assert result.retry_in >= 7
    assert h.state(batch_id) == "queued"


def test_429_pauses_every_sender(redis_client: redis.Redis, clock: FakeClock) -> None:
    h = Harness(redis_client, clock, answer(429, **{"Retry-After": "2"}))
    h.sender.send(h.cut_batch())
    assert h.pacer.paused_for() == pytest.approx(2.0)
    assert h.pacer.reserve(1) >= 2.0


def test_retries_exhausted_go_to_dead_letters(redis_client: redis.Redis, clock: FakeClock) -> None:
    h = Harness(redis_client, clock, answer(503))
    batch_id = h.cut_batch()
    outcomes = []
    for _ in range(3):
        result = h.sender.send(batch_id)
        outcomes.append(result.outcome)
        clock.advance(result.retry_in)  # a retry is not picked before it is due
    assert outcomes == ["retry", "retry", "dead"]
    letters = h.dead_letters()
    assert len(letters) == 3
    assert {letter["reason"] for letter in letters} == {RETRIES_EXHAUSTED}
    assert {letter["attempts"] for letter in letters} == {3}


def test_dropped_connection_after_sending_is_unknown_outcome_not_resent(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    h = Harness(redis_client, clock, drop)
    batch_id = h.cut_batch()
    assert h.sender.send(batch_id).outcome == "dead"
    assert {letter["reason"] for letter in h.dead_letters()} == {UNKNOWN_OUTCOME}
    assert h.sender.send(batch_id).outcome == "skipped"
    assert len(h.bodies) == 1


def test_connect_error_is_retried(redis_client: redis.Redis, clock: FakeClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    h = Harness(redis_client, clock, refuse)
    assert h.sender.send(h.cut_batch()).outcome == "retry"


def test_other_4xx_dead_letters_with_status_and_body(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    h = Harness(redis_client, clock, lambda r: httpx.Response(400, json={"detail": "bad template"}))
    h.sender.send(h.cut_batch())
    letters = h.dead_letters()
    assert {letter["reason"] for letter in letters} == {REJECTED_BY_LEVERS}
    assert {letter["status"] for letter in letters} == {400}
    assert "bad template" in str(letters[0]["detail"])


def test_attempt_that_died_before_its_request_is_simply_sent(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    h = Harness(redis_client, clock, answer(201))
    batch_id = h.cut_batch()
    # A worker claimed it and was killed while waiting for the pacer.
    assert h.outbox.pick(batch_id, "killed-worker").verdict == "claimed"
    assert h.sender.send(batch_id).outcome == "skipped"  # lease still held
    clock.advance(h.outbox.config.send_lease_seconds)
    assert h.sender.send(batch_id).outcome == "sent"
    assert len(h.bodies) == 1


def test_attempt_that_died_in_flight_is_unknown_outcome(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    h = Harness(redis_client, clock, answer(201))
    batch_id = h.cut_batch()
    # A worker started the request and was killed before recording the answer.
    claim = h.outbox.pick(batch_id, "killed-worker")
    assert claim.verdict == "claimed"
    assert h.outbox.begin(claim, "killed-worker").code == "send"
    assert h.sender.send(batch_id).outcome == "skipped"  # lease still held
    clock.advance(h.outbox.config.send_lease_seconds)
    assert h.sender.send(batch_id).outcome == "dead"
    assert {letter["reason"] for letter in h.dead_letters()} == {UNKNOWN_OUTCOME}
    assert h.bodies == []


def test_pacer_spaces_requests_across_senders(redis_client: redis.Redis, clock: FakeClock) -> None:
    pacer = Pacer(redis_client, Keys("p"), Limits(requests_per_second=5, jitter_ms=0), clock)
    times = [pacer.reserve(1) for _ in range(6)]
    assert times == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_pacer_jitter_margin_widens_the_spacing(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    pacer = Pacer(redis_client, Keys("p"), Limits(requests_per_second=5, jitter_ms=40), clock)
    times = [pacer.reserve(1) for _ in range(3)]
    assert times == pytest.approx([0.0, 0.208, 0.416])


def test_pacer_contact_window_holds_at_most_the_limit(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    pacer = Pacer(
        redis_client,
        Keys("p"),
        Limits(requests_per_second=1000, contacts_per_minute=250, jitter_ms=0),
        clock,
    )
    times = [pacer.reserve(100) for _ in range(4)]
    # 100 + 100 fit in the first minute; the third must wait for the first to leave the window,
    # which is kept a second longer than a minute (late arrivals, see ratelimit.py).
    assert times[0] == 0 and times[1] == pytest.approx(0.001, abs=1e-6)
    assert times[2] == pytest.approx(61.0, abs=1e-6)
    assert times[3] == pytest.approx(61.001, abs=1e-6)


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3
    # A date is measured against the response's own Date header, not this host's clock.
    date = "Wed, 21 Oct 2026 07:27:50 GMT"
    assert parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT", date) == pytest.approx(10)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def refuse_numbers(*numbers: str) -> Handler:
    """A 422 in Levers' shape for every contact whose number is in `numbers`."""

    def handler(request: httpx.Request) -> httpx.Response:
        contacts = json.loads(request.content)["contacts"]
        detail = [
            {"loc": ["body", "contacts", i, "numberToCall"], "msg": "number refused", "type": "v"}
            for i, c in enumerate(contacts)
            if c["numberToCall"] in numbers
        ]
        return httpx.Response(422, json={"detail": detail}) if detail else httpx.Response(201)

    return handler


def drain(h: Harness) -> None:
    """Send every batch the outbox queued a token for, as the send actor would."""
    while queued := tokens(h.broker):
        for batch_id in queued:
            h.sender.send(batch_id)


def test_422_naming_contacts_dead_letters_them_and_sends_the_rest(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    bad = "+966501230003"
    h = Harness(redis_client, clock, refuse_numbers(bad))
    batch_id = h.cut_batch(size=6)
    assert h.sender.send(batch_id).outcome == "split"
    assert h.state(batch_id) == "split"
    drain(h)
    [letter] = h.dead_letters()
    assert letter["reason"] == INVALID_CONTACT and letter["detail"] == "number refused"
    assert letter["contact"]["numberToCall"] == bad  # type: ignore[index]
    assert len(h.bodies) == 2
    accepted = [c["numberToCall"] for c in h.bodies[-1]["contacts"]]  # type: ignore[attr-defined]
    assert len(accepted) == 5 and bad not in accepted
    assert h.stats()["contacts_sent"] == 5


def test_422_naming_nobody_is_bisected_down_to_the_bad_contact(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    bad = "+966501230005"

    def opaque(request: httpx.Request) -> httpx.Response:
        contacts = json.loads(request.content)["contacts"]
        if any(c["numberToCall"] == bad for c in contacts):
            return httpx.Response(422, json={"detail": "something in there is wrong"})
        return httpx.Response(201)

    h = Harness(redis_client, clock, opaque)
    h.sender.send(h.cut_batch(size=16))
    drain(h)
    [letter] = h.dead_letters()
    assert letter["contact"]["numberToCall"] == bad  # type: ignore[index]
    assert h.stats()["contacts_sent"] == 15
    # About log2(n) extra requests per bad contact: 16 -> 8 -> 4 -> 2 -> 1, two per level.
    assert len(h.bodies) <= 1 + 2 * 4


def test_500_is_an_unknown_outcome_not_resent(redis_client: redis.Redis, clock: FakeClock) -> None:
    h = Harness(redis_client, clock, answer(500))
    assert h.sender.send(h.cut_batch()).outcome == "dead"
    assert {letter["reason"] for letter in h.dead_letters()} == {UNKNOWN_OUTCOME}


def test_throttles_do_not_count_as_attempts(redis_client: redis.Redis, clock: FakeClock) -> None:
    statuses = [429, 429, 429, 429, 503, 503, 201]

    def answer_in_turn(request: httpx.Request) -> httpx.Response:
        return httpx.Response(statuses.pop(0), headers={"Retry-After": "1"})

    h = Harness(redis_client, clock, answer_in_turn)
    batch_id = h.cut_batch()
    outcomes = []
    for _ in range(7):
        result = h.sender.send(batch_id)
        outcomes.append(result.outcome)
        clock.advance(result.retry_in)
    # Two failures are within max_retries=2; the four 429s did not use any of them up.
    assert outcomes == ["retry"] * 6 + ["sent"]


def test_retries_stop_after_the_elapsed_time_limit(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    h = Harness(redis_client, clock, answer(503))
    batch_id = h.cut_batch()
    result = h.sender.send(batch_id)
    assert result.outcome == "retry"
    clock.advance(601)
    assert h.sender.send(batch_id).outcome == "dead"
    assert {letter["reason"] for letter in h.dead_letters()} == {RETRIES_EXHAUSTED}
