"""POST /v1/webhooks/levers over real HTTP: the Svix signature is the only way in, a delivery is
queued once whatever Svix or a replayer sends again, and no payload gets a 500."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from dramatiq import Message

from tests.integration.ingest.conftest import WEBHOOK_SECRET, IngestServer
from tests.servers import RedisServer
from worker.broker import OUTCOME_ACTOR, OUTCOMES_QUEUE
from worker.keys import Keys
from worker.sandbox_webhooks import sign
from worker.settings import Settings

pytestmark = pytest.mark.integration

PATH = "/v1/webhooks/levers"
PAYLOAD = {
    "providerCallId": "call_1",
    "numberFrom": "+966112345678",
    "numberTo": "+966501234567",
    "providerStatus": "completed",
    "deliveryStatus": "pass",
    "duration": 61,
    "summary": "The customer agreed to pay on Sunday.",
    "endedReason": "customer-ended-call",
    "callOutput": "interested",
    "callOutputReasoning": "said yes",
    "sentimentOutput": "positive",
    "transcription": "AI: Hello Sara ...",
    "recordingUrl": "https://recordings.invalid/1.mp3",
    "metadata": {
        "requestMetadata": {
            "crm_id": "42",
            "levers_batcher": {"batch_id": "b" * 32, "contact_id": "c1", "index": 0, "at": 1},
        }
    },
}


def body_of(payload: Any = PAYLOAD) -> bytes:
    return json.dumps(payload).encode()


def post(ingest: IngestServer, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=ingest.url, timeout=10) as http:
        return http.post(PATH, content=body, headers=headers)  # no bearer token


def queued(client: redis.Redis, settings: Settings) -> list[Message[Any]]:
    name = f"{Keys(settings.namespace).dramatiq}:{OUTCOMES_QUEUE}"
    ids = [i.decode() for i in client.lrange(name, 0, -1)]
    return [Message.decode(r) for r in client.hmget(f"{name}.msgs", ids) if r] if ids else []


def test_a_signed_delivery_is_queued_with_only_the_fields_kept(
    ingest: IngestServer, redis_client: redis.Redis, settings: Settings
) -> None:
    body = body_of()
    answer = post(ingest, body, sign(WEBHOOK_SECRET, "msg_1", time.time(), body))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"eventId": "msg_1", "duplicate": False}
    [message] = queued(redis_client, settings)
    assert message.actor_name == OUTCOME_ACTOR
    event = message.args[0]
    assert event["eventId"] == "msg_1"
    assert event["correlation"]["contact_id"] == "c1"
    assert event["metadata"] == {"crm_id": "42"}
    assert event["outcome"]["endedReason"] == "customer-ended-call"
    text = json.dumps(event)
    for private in ("agreed to pay", "Hello Sara", "recordings.invalid", "said yes"):
        assert private not in text


def test_a_duplicate_delivery_and_a_replay_queue_nothing_again(
    ingest: IngestServer, redis_client: redis.Redis, settings: Settings
) -> None:
    body = body_of()
    headers = sign(WEBHOOK_SECRET, "msg_dup", time.time(), body)
    assert post(ingest, body, headers).status_code == 202
    # Svix delivering the same message again (a fresh timestamp), and someone replaying the
    # captured request as it was: both verify, neither is queued twice.
    again = sign(WEBHOOK_SECRET, "msg_dup", time.time() + 1, body)
    for headers_sent in (again, headers):
        answer = post(ingest, body, headers_sent)
        assert answer.status_code == 200
        assert answer.json() == {"eventId": "msg_dup", "duplicate": True}
    assert len(queued(redis_client, settings)) == 1


@pytest.mark.parametrize(
    ("change", "result"),
    [
        (
            lambda h, b: {**h, "svix-signature": "v1,AAAA" + h["svix-signature"][7:]},
            "bad_signature",
        ),
        (lambda h, b: {**h, "svix-signature": "garbage"}, "bad_signature"),
        (lambda h, b: {k: v for k, v in h.items() if k != "svix-signature"}, "missing_headers"),
        (lambda h, b: {**h, "svix-id": "msg_other"}, "bad_signature"),  # id is signed too
        (lambda h, b: {**h, "svix-timestamp": "yesterday"}, "stale"),
    ],
)
def test_a_bad_signature_is_a_401_and_queues_nothing(
    ingest: IngestServer,
    redis_client: redis.Redis,
    settings: Settings,
    change: Callable[[dict[str, str], bytes], dict[str, str]],
    result: str,
) -> None:
    body = body_of()
    headers = change(sign(WEBHOOK_SECRET, "msg_bad", time.time(), body), body)
    answer = post(ingest, body, headers)
    assert answer.status_code == 401, answer.text
    assert queued(redis_client, settings) == []
    metrics = httpx.get(f"{ingest.url}/metrics").text
    assert f'levers_ingest_webhooks_total{{result="{result}"}} 1.0' in metrics


def test_a_tampered_body_and_another_secret_are_refused(ingest: IngestServer) -> None:
    body = body_of()
    headers = sign(WEBHOOK_SECRET, "msg_t", time.time(), body)
    assert post(ingest, body.replace(b"pass", b"fail"), headers).status_code == 401
    other = sign("whsec_" + "Q" * 32, "msg_t", time.time(), body)
    assert post(ingest, body, other).status_code == 401


@pytest.mark.parametrize("age", [-400, 400, 3600])
def test_a_timestamp_outside_five_minutes_is_refused(ingest: IngestServer, age: int) -> None:
    # A delivery captured and replayed ten minutes later carries its old, signed timestamp.
    body = body_of()
    answer = post(ingest, body, sign(WEBHOOK_SECRET, f"msg_old{age}", time.time() - age, body))
    assert answer.status_code == 401
    assert "svix-timestamp" in answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"deliveryStatus": 5, "duration": "long"}', b"\xff\xfe", b""],
)
def test_a_signed_but_malformed_payload_is_never_a_500(
    ingest: IngestServer, redis_client: redis.Redis, settings: Settings, body: bytes
) -> None:
    headers = (
        sign(WEBHOOK_SECRET, "msg_m", time.time(), body)
        if body != b"\xff\xfe"
        else {
            "svix-id": "msg_m",
            "svix-timestamp": str(int(time.time())),
            "svix-signature": "v1,AAAA",
        }
    )
    answer = post(ingest, body, headers)
    assert answer.status_code in (202, 401), answer.text
    if answer.status_code == 202:
        [message] = queued(redis_client, settings)
        assert message.args[0]["correlation"] is None  # kept as unmatched by the worker


def test_without_a_secret_the_route_answers_503(
    serve: Callable[[dict[str, str]], IngestServer], ingest_env: dict[str, str]
) -> None:
    env = {k: v for k, v in ingest_env.items() if k != "LEVERS_WEBHOOK_SECRET"}
    server = serve(env)
    body = body_of()
    answer = post(server, body, sign(WEBHOOK_SECRET, "msg_1", time.time(), body))
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    assert "LEVERS_WEBHOOK_SECRET" in answer.json()["detail"]


def test_redis_down_is_a_503_and_svix_retry_is_queued_in_full(
    serve: Callable[[dict[str, str]], IngestServer],
    ingest_env: dict[str, str],
    tmp_path: Path,
) -> None:
    gone = RedisServer(tmp_path / "gone").start()
    gone.stop()
    server = serve({**ingest_env, "REDIS_URL": gone.url})
    body = body_of()
    answer = post(server, body, sign(WEBHOOK_SECRET, "msg_1", time.time(), body))
    assert answer.status_code == 503 and answer.headers["Retry-After"]
