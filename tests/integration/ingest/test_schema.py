"""levers-ingest against its own OpenAPI document: generated requests (valid and invalid) never
get a 500 or an answer the document does not describe, and every documented status code is
reached by a request made on purpose."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.ingest.app import create_app
from tests.integration.ingest.conftest import TOKEN, WEBHOOK_SECRET, IngestServer
from tests.servers import RedisServer
from worker.sandbox_webhooks import sign
from worker.settings import Settings

pytestmark = pytest.mark.integration

# Examples per operation and mode: enough to cover each field's types and the malformed
# shapes, few enough that the whole file runs in seconds.
MAX_EXAMPLES = 40
VALID_KEY = re.compile(r"[\x21-\x7e]{1,200}")


def load_schema() -> schemathesis.BaseSchema:
    """The document of an app built like the served one (building it opens no connection)."""
    app = create_app(Settings.from_env({"LEVERS_INGEST_TOKENS": TOKEN}))
    return schemathesis.openapi.from_dict(app.openapi())


generated = load_schema()
OPERATIONS = {
    f"{operation.method.upper()} {operation.path}": operation
    for operation in (result.ok() for result in generated.get_all_operations())
}


# A plain parametrize, one test per operation: schemathesis' own gives all of them one node id,
# so a report (or a `-k`, or a scheduler) cannot tell them apart.
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_generated_requests_get_documented_answers(label: str, ingest: IngestServer) -> None:
    operation = OPERATIONS[label]
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=2 * MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        key = (case.headers or {}).get("Idempotency-Key")
        if key is not None and VALID_KEY.fullmatch(key):
            # Examples would otherwise share keys ("0", "!") across bodies, and most valid
            # ones would meet a 409 from an earlier example (reached on purpose below).
            case.headers["Idempotency-Key"] = f"{key}-{uuid.uuid4().hex}"
        case.call_and_validate(base_url=ingest.url, headers={"Authorization": f"Bearer {TOKEN}"})

    check()


# -- every documented status code, reached on purpose ------------------------------------------


def documented(document: dict[str, object]) -> set[tuple[str, str, int]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {
        (method.upper(), path, int(status))
        for path, item in paths.items()
        for method, operation in item.items()
        for status in operation["responses"]
    }


@pytest.fixture
def broken_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis URL where nothing answers (a server started, then stopped)."""
    server = RedisServer(tmp_path / "gone").start()
    server.stop()
    yield server.url


def test_every_documented_status_code_is_reached(
    ingest: IngestServer,
    serve: Callable[[dict[str, str]], IngestServer],
    ingest_env: dict[str, str],
    broken_redis: str,
    redis_client: redis.Redis,
) -> None:
    reached: set[tuple[str, str, int]] = set()
    contact = {"numberToCall": "+966501234567"}

    def hit(http: httpx.Client, method: str, path: str, **options: object) -> None:
        answer = http.request(method, path, **options)  # type: ignore[arg-type]
        reached.add((method, path, answer.status_code))

    with ingest.client() as http:
        document = http.get("/openapi.json").json()
        hit(http, "POST", "/v1/contacts", json=contact, headers={"Idempotency-Key": "a"})
        hit(http, "POST", "/v1/contacts", json=[contact], headers={"Idempotency-Key": "a"})
        hit(http, "POST", "/v1/contacts", content=b"[]")
        hit(http, "POST", "/v1/contacts", content=b"x" * (4 * 1024 * 1024 + 1))
        hit(http, "GET", "/healthz")
        hit(http, "GET", "/readyz")
        hit(http, "GET", "/metrics")
    with ingest.client(token=None) as http:
        hit(http, "POST", "/v1/contacts", json=contact)
    with ingest.client(token="a-token-nobody-configured") as http:
        hit(http, "POST", "/v1/contacts", json=contact)
    hook = "/v1/webhooks/levers"
    body = b'{"deliveryStatus": "pass"}'
    signed = sign(WEBHOOK_SECRET, "msg_schema", time.time(), body)
    with ingest.client(token=None) as http:
        hit(http, "POST", hook, content=body, headers=signed)
        hit(http, "POST", hook, content=body, headers=signed)  # a duplicate: 200
        hit(http, "POST", hook, content=body)  # unsigned: 401
    with serve({**ingest_env, "REDIS_URL": broken_redis}).client() as http:
        hit(http, "POST", "/v1/contacts", json=contact)
        hit(http, "GET", "/readyz")
        hit(http, "POST", hook, content=body, headers=signed)
    assert reached == documented(document), json.dumps(sorted(reached))
