"""levers-ingest over real HTTP against a real Redis: auth, limits, malformed bodies, each
contact's outcome, Idempotency-Key, metrics and probes."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.integration.ingest.conftest import ROTATED_TOKEN, IngestServer
from worker.broker import CONTACTS_QUEUE
from worker.keys import Keys
from worker.settings import Settings

pytestmark = pytest.mark.integration

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"


def contact(i: int, **fields: Any) -> dict[str, Any]:
    return {"numberToCall": f"+96650{i:07d}", **fields}


def queued(redis_client: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    """The contact messages waiting in the queue, decoded, in queue order."""
    prefix = f"{Keys(settings.namespace).dramatiq}:{CONTACTS_QUEUE}"
    ids = redis_client.lrange(prefix, 0, -1)
    return [json.loads(redis_client.hget(f"{prefix}.msgs", rid)) for rid in ids]


def queued_contacts(redis_client: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    return [c for m in queued(redis_client, settings) for c in m["args"][0]]


# -- auth -------------------------------------------------------------------------------------


def test_no_token_is_401_with_www_authenticate(ingest: IngestServer) -> None:
    with ingest.client(token=None) as http:
        for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
            answer = http.post("/v1/contacts", json=contact(1), headers=headers)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"].startswith("Bearer")


def test_wrong_token_is_403_and_enqueues_nothing(
    ingest: IngestServer, redis_client: redis.Redis, settings: Settings
) -> None:
    with ingest.client(token="not-the-token-at-all-1234") as http:
        assert http.post("/v1/contacts", json=contact(1)).status_code == 403
    assert queued(redis_client, settings) == []


def test_auth_comes_before_parsing(ingest: IngestServer) -> None:
    with ingest.client(token=None) as http:
        assert http.post("/v1/contacts", content=b"{not json").status_code == 401


def test_every_configured_token_is_accepted(ingest: IngestServer) -> None:
    with ingest.client(token=ROTATED_TOKEN) as http:
        assert http.post("/v1/contacts", json=contact(1)).status_code == 202


def test_probes_and_metrics_need_no_token(ingest: IngestServer) -> None:
    with ingest.client(token=None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ready"}
        assert http.get("/metrics").status_code == 200
        assert http.get("/openapi.json").json()["paths"]["/v1/contacts"]["post"]


# -- body size --------------------------------------------------------------------------------


@pytest.fixture
def small(
    serve: Callable[[dict[str, str]], IngestServer], ingest_env: dict[str, str]
) -> IngestServer:
    return serve({**ingest_env, "LEVERS_INGEST_MAX_BODY_BYTES": "2048"})


def test_declared_length_over_the_limit_is_413(
    small: IngestServer, redis_client: redis.Redis, settings: Settings
) -> None:
    body = json.dumps([contact(i, firstName="x" * 40) for i in range(40)]).encode()
    assert len(body) > 2048
    with small.client() as http:
        answer = http.post("/v1/contacts", content=body)
    assert answer.status_code == 413
    assert "2048" in answer.json()["detail"]
    assert queued(redis_client, settings) == []


def test_chunked_body_over_the_limit_is_413(
    small: IngestServer, redis_client: redis.Redis, settings: Settings
) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b"["
        for i in range(40):
            yield json.dumps(contact(i, firstName="x" * 40)).encode() + b","
        yield json.dumps(contact(99)).encode() + b"]"

    with small.client() as http:
        answer = http.post("/v1/contacts", content=chunks())
    assert answer.status_code == 413
    assert queued(redis_client, settings) == []


def test_chunked_body_within_the_limit_is_read_whole(small: IngestServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        yield json.dumps(contact(1)).encode()
        yield b","
        yield json.dumps(contact(2)).encode()
        yield b"]"

    with small.client() as http:
        answer = http.post("/v1/contacts", content=chunks())
    assert answer.status_code == 202
    assert answer.json()["accepted"] == 2


# -- malformed bodies: 422, nothing enqueued --------------------------------------------------


MALFORMED = [
    pytest.param(b"", "json_invalid", ["body"], id="empty"),
    pytest.param(b"{not json", "json_invalid", ["body"], id="not-json"),
    pytest.param(b"[" * 10_000 + b"]" * 10_000, "json_invalid", ["body"], id="too-deep"),
    pytest.param(b"42", "invalid_body", ["body"], id="a-number"),
    pytest.param(b'"+966501234567"', "invalid_body", ["body"], id="a-string"),
    pytest.param(b"[]", "too_short", ["body"], id="empty-list"),
    pytest.param(b"[42]", "model_type", ["body", 0], id="list-of-numbers"),
    pytest.param(b'{"firstName": "Sara"}', "missing", ["body", "numberToCall"], id="no-number"),
    pytest.param(
        b'{"numberToCall": 966501234567}', "string_type", ["body", "numberToCall"], id="int"
    ),
    pytest.param(
        b'{"numberToCall": "+966501234567", "updateExisting": "yes"}',
        "bool_type",
        ["body", "updateExisting"],
        id="bool-as-string",
    ),
    pytest.param(
        b'[{"numberToCall": "+966501234567"}, {"numberToCall": "+966501234568", "tags": {}}]',
        "extra_forbidden",
        ["body", 1, "tags"],
        id="unknown-field",
    ),
    pytest.param(
        b'{"numberToCall": "+966501234567", "number": "+966501234568"}',
        "extra_forbidden",
        ["body", "number"],
        id="python-name",
    ),
    pytest.param(
        b'{"numberToCall": "+966501234567", "promptTags": {"amount": 120}}',
        "string_type",
        ["body", "promptTags", "amount"],
        id="prompt-tag-number",
    ),
    pytest.param(
        b'{"numberToCall": "+966501234567", "metadata": [1]}',
        "dict_type",
        ["body", "metadata"],
        id="metadata-list",
    ),
]


@pytest.mark.parametrize(("body", "kind", "loc"), MALFORMED)
def test_malformed_body_is_422_in_fastapis_shape(
    client: httpx.Client,
    redis_client: redis.Redis,
    settings: Settings,
    body: bytes,
    kind: str,
    loc: list[str | int],
) -> None:
    answer = client.post("/v1/contacts", content=body)
    assert answer.status_code == 422, answer.text
    issues = answer.json()["detail"]
    assert {"loc": loc, "type": kind} in [{"loc": i["loc"], "type": i["type"]} for i in issues]
    assert all(set(i) == {"loc", "msg", "type"} for i in issues)
    assert queued(redis_client, settings) == []


def test_more_contacts_than_the_limit_is_422(
    serve: Callable[[dict[str, str]], IngestServer],
    ingest_env: dict[str, str],
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    server = serve({**ingest_env, "LEVERS_INGEST_MAX_CONTACTS": "10"})
    with server.client() as http:
        assert http.post("/v1/contacts", json=[contact(i) for i in range(10)]).status_code == 202
        answer = http.post("/v1/contacts", json=[contact(i) for i in range(11)])
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["type"] == "too_long"
    assert len(queued_contacts(redis_client, settings)) == 10


@pytest.mark.parametrize("key", ["x" * 256, "with space", '""', "caf\u00e9"])
def test_bad_idempotency_key_header_is_422(client: httpx.Client, key: str) -> None:
    answer = client.post(
        "/v1/contacts", json=contact(1), headers={"Idempotency-Key": key.encode("utf-8")}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


# -- each contact's outcome --------------------------------------------------------------------


def test_one_contact_object_is_enqueued_with_python_field_names(
    client: httpx.Client, redis_client: redis.Redis, settings: Settings
) -> None:
    body = {
        "numberToCall": "0501234567",
        "region": "SA",
        "firstName": " Sara ",
        "lastName": "Al-Qahtani",
        "metadata": {"crm_id": "42", "nested": {"a": [1, 2]}},
        "promptTags": {"amount": "120"},
        "aiSettingsTemplateId": TEMPLATE.upper(),
        "updateExisting": True,
        "dedupeKey": "event-7",
    }
    answer = client.post("/v1/contacts", json=body)
    assert answer.status_code == 202
    (outcome,) = answer.json()["contacts"]
    assert outcome["status"] == "accepted" and outcome["index"] == 0
    (message,) = queued(redis_client, settings)
    assert outcome["contactId"] == f"{message['message_id']}:0"
    # Normalised once, by the same validation as the Python producer.
    assert message["args"][0] == [
        {
            "number": "+966501234567",
            "first_name": "Sara",
            "last_name": "Al-Qahtani",
            "template_id": TEMPLATE,
            "dedupe_key": "event-7",
            "metadata": {"crm_id": "42", "nested": {"a": [1, 2]}},
            "prompt_tags": {"amount": "120"},
            "update_existing": True,
        }
    ]


def test_each_contact_has_its_outcome_in_order_and_only_valid_ones_are_enqueued(
    client: httpx.Client, redis_client: redis.Redis, settings: Settings
) -> None:
    rows = [
        contact(0),
        {"numberToCall": "+96612341234"},  # too short to be a Saudi number
        contact(2, aiSettingsTemplateId="not-a-uuid"),
        {"numberToCall": "0501234567"},  # national, no region
        contact(4, metadata={"levers_batcher": {}}),
        contact(5, firstName="x" * 101),
        contact(6, firstName=None, metadata=None),  # nulls mean absent
    ]
    answer = client.post("/v1/contacts", json=rows)
    assert answer.status_code == 202
    data = answer.json()
    assert (data["accepted"], data["rejected"]) == (2, 5)
    assert [(c["index"], c["status"], c.get("reason")) for c in data["contacts"]] == [
        (0, "accepted", None),
        (1, "rejected", "invalid_number"),
        (2, "rejected", "invalid_template_id"),
        (3, "rejected", "unparseable_number"),
        (4, "rejected", "invalid_metadata"),
        (5, "rejected", "invalid_name"),
        (6, "accepted", None),
    ]
    assert all(c["message"] for c in data["contacts"] if c["status"] == "rejected")
    numbers = [c["number"] for c in queued_contacts(redis_client, settings)]
    assert numbers == [rows[0]["numberToCall"], rows[6]["numberToCall"]]
    ids = [c["contactId"] for c in data["contacts"] if c["status"] == "accepted"]
    message_id = queued(redis_client, settings)[0]["message_id"]
    assert ids == [f"{message_id}:0", f"{message_id}:1"]


def test_a_list_goes_50_contacts_per_message(
    client: httpx.Client, redis_client: redis.Redis, settings: Settings
) -> None:
    answer = client.post("/v1/contacts", json=[contact(i) for i in range(120)])
    assert answer.json()["accepted"] == 120
    assert [len(m["args"][0]) for m in queued(redis_client, settings)] == [50, 50, 20]


# -- Idempotency-Key --------------------------------------------------------------------------


def test_a_retry_with_the_same_key_enqueues_nothing_and_gets_the_same_answer(
    client: httpx.Client, redis_client: redis.Redis, settings: Settings
) -> None:
    rows = [contact(i) for i in range(60)] + [{"numberToCall": "+96612341234"}]
    headers = {"Idempotency-Key": "order-7-attempt"}
    quoted_key = {"Idempotency-Key": '"order-7-attempt"'}
    first = client.post("/v1/contacts", json=rows, headers=headers)
    again = client.post("/v1/contacts", json=rows, headers=headers)
    # The draft standard's form is a quoted string: the same key.
    quoted = client.post("/v1/contacts", json=rows, headers=quoted_key)
    assert first.status_code == again.status_code == quoted.status_code == 202
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == quoted.json() == first.json()
    assert len(queued_contacts(redis_client, settings)) == 60
    key = Keys(settings.namespace).idempotency("order-7-attempt")
    ttl = redis_client.ttl(key)
    assert 0 < ttl <= settings.ingest_idempotency_seconds
    # The stored record is small, not the answer's JSON.
    assert redis_client.strlen(key) < len(first.content) / 4


def test_the_same_key_with_another_body_is_409(
    client: httpx.Client, redis_client: redis.Redis, settings: Settings
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    assert client.post("/v1/contacts", json=contact(1), headers=headers).status_code == 202
    answer = client.post("/v1/contacts", json=contact(2), headers=headers)
    assert answer.status_code == 409
    assert "different body" in answer.json()["detail"]
    assert len(queued_contacts(redis_client, settings)) == 1


def test_a_rejected_only_request_is_remembered_too(
    client: httpx.Client, redis_client: redis.Redis, settings: Settings
) -> None:
    headers = {"Idempotency-Key": "k-bad"}
    first = client.post("/v1/contacts", json={"numberToCall": "+1"}, headers=headers)
    again = client.post("/v1/contacts", json={"numberToCall": "+1"}, headers=headers)
    assert first.json()["rejected"] == 1
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"


def test_concurrent_requests_with_one_key_enqueue_once(
    ingest: IngestServer, redis_client: redis.Redis, settings: Settings
) -> None:
    rows = [contact(i) for i in range(100)]
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(8)

    def post() -> None:
        with ingest.client() as http:
            barrier.wait()
            answers.append(http.post("/v1/contacts", json=rows, headers={"Idempotency-Key": "c"}))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [202] * 8
    assert len({a.content for a in answers}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert len(queued_contacts(redis_client, settings)) == 100


# -- metrics ----------------------------------------------------------------------------------


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and got == wanted:
            return float(value)
    return 0.0


def test_metrics_count_requests_contacts_and_latency(ingest: IngestServer) -> None:
    with ingest.client() as http:
        http.post("/v1/contacts", json=[contact(1), {"numberToCall": "+1"}])
        http.post("/v1/contacts", json=[contact(2)], headers={"Idempotency-Key": "m"})
        http.post("/v1/contacts", json=[contact(2)], headers={"Idempotency-Key": "m"})
        http.post("/v1/contacts", content=b"nope")
        http.get("/no/such/path")
    with ingest.client(token=None) as http:
        http.post("/v1/contacts", json=[contact(3)])
        text = http.get("/metrics").text
    route = "/v1/contacts"
    assert sample(text, "levers_ingest_requests_total", route=route, status="202") == 3
    assert sample(text, "levers_ingest_requests_total", route=route, status="422") == 1
    assert sample(text, "levers_ingest_requests_total", route=route, status="401") == 1
    assert sample(text, "levers_ingest_requests_total", route="other", status="404") == 1
    assert sample(text, "levers_ingest_contacts_total", outcome="accepted") == 2
    assert sample(text, "levers_ingest_contacts_total", outcome="rejected") == 1
    assert sample(text, "levers_ingest_contacts_rejected_total", reason="unparseable_number") == 1
    assert sample(text, "levers_ingest_idempotent_replays_total") == 1
    assert sample(text, "levers_ingest_request_duration_seconds_count", route=route) == 5
    assert "+9665" not in text and "Bearer" not in text
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (Debian's package has it)"
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout
