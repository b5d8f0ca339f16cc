"""HTTP outcome callbacks: signed so the receiver verifies them with the Svix library, retried
while they fail, dead-lettered after the last attempt, and replayed from there."""

from __future__ import annotations

import random

import httpx
import pytest
import redis
from svix.webhooks import Webhook, WebhookVerificationError

from tests.conftest import FakeClock
from tests.outcome_harness import Loop
from worker.broker import CALLBACK_ACTOR, CALLBACKS_QUEUE
from worker.notify import CallbackFailed
from worker.outcome_runtime import callback_backoff_ms

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL = "https://crm.example/hooks/levers"
PAYLOAD = {"type": "phone_call.ended", "contactId": "m1", "outcome": {"deliveryStatus": "fail"}}


class Receiver:
    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 0:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, text="nope" if status >= 300 else "")


def make(client: redis.Redis, clock: FakeClock, receiver: Receiver) -> Loop:
    return Loop(
        client,
        clock,
        transport=httpx.MockTransport(receiver),
        LEVERS_CALLBACK_SECRET=SECRET,
        LEVERS_CALLBACK_MAX_ATTEMPTS="3",
    )


def test_a_callback_is_signed_like_a_levers_webhook(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    receiver = Receiver(204)
    loop = make(redis_client, clock, receiver)
    assert loop.runtime.callbacks.deliver("m1", URL, PAYLOAD, attempt=1) == "delivered"
    [request] = receiver.requests
    headers = {k: v for k, v in request.headers.items() if k.startswith("svix-")}
    assert headers["svix-id"] == "msg_m1"
    Webhook(SECRET).verify(request.content, headers)  # raises if the signature were wrong
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(request.content, headers)


def test_a_failing_callback_is_retried_then_dead_lettered_and_replayed(
    redis_client: redis.Redis, clock: FakeClock
) -> None:
    receiver = Receiver(500, 0, 503)
    loop = make(redis_client, clock, receiver)
    callbacks = loop.runtime.callbacks
    for attempt in (1, 2):
        with pytest.raises(CallbackFailed):
            callbacks.deliver("m1", URL, PAYLOAD, attempt)
    assert loop.runtime.callback_dead.count() == 0
    assert callbacks.deliver("m1", URL, PAYLOAD, attempt=3) == "dead"
    # The same delivery id on every attempt: the receiver can tell a retry from a new outcome.
    assert {r.headers["svix-id"] for r in receiver.requests} == {"msg_m1"}
    [record] = loop.runtime.callback_dead.select()
    assert (record["id"], record["url"], record["attempts"]) == ("m1", URL, 3)
    assert record["payload"] == PAYLOAD and record["error"].startswith("answered 503")
    assert loop.runtime.callback_dead.replay(loop.broker, [record]) == 1
    [message] = loop.queued(CALLBACKS_QUEUE)
    assert message.actor_name == CALLBACK_ACTOR and message.args == ("m1", URL, PAYLOAD)
    assert loop.runtime.callback_dead.count() == 0


def test_callbacks_are_not_sent_unsigned(redis_client: redis.Redis, clock: FakeClock) -> None:
    receiver = Receiver()
    loop = Loop(
        redis_client,
        clock,
        transport=httpx.MockTransport(receiver),
        LEVERS_CALLBACK_MAX_ATTEMPTS="1",
    )
    assert loop.runtime.callbacks.deliver("m1", URL, PAYLOAD, attempt=1) == "dead"
    assert receiver.requests == []


def test_backoff_doubles_with_jitter_up_to_an_hour() -> None:
    from worker.settings import Settings

    settings = Settings.from_env({"LEVERS_CALLBACK_BACKOFF_SECONDS": "10"})
    rng = random.Random(1)
    waits = [callback_backoff_ms(settings, attempt, rng) for attempt in (1, 2, 3, 20)]
    assert 5_000 <= waits[0] <= 10_000
    assert 10_000 <= waits[1] <= 20_000
    assert 20_000 <= waits[2] <= 40_000
    assert 1_800_000 <= waits[3] <= 3_600_000
