"""levers-ingest in front of a real worker: contacts posted over HTTP reach the sandbox once,
and a Redis that fails leaves nothing half-accepted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.ingest.conftest import IngestServer
from tests.servers import RedisServer, wait_for
from tests.workers import WorkerProcess
from worker.broker import CONTACTS_QUEUE
from worker.contacts import RESERVED_METADATA_KEY
from worker.keys import Keys
from worker.sandbox import Sandbox
from worker.settings import Settings

pytestmark = pytest.mark.integration

TEMPLATES = [None, "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"]


def rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "numberToCall": f"+96650{start + i:07d}",
            "firstName": f"Name {i}",
            "aiSettingsTemplateId": TEMPLATES[i % 2],
            "metadata": {"crm_id": str(i)},
            "promptTags": {"amount": str(i)},
        }
        for i in range(count)
    ]


def sent(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [c for request in sandbox.accepted() for c in request.body["contacts"]]


def test_contacts_posted_over_http_reach_the_sandbox_once(
    ingest: IngestServer,
    sandbox: Sandbox,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    posted = rows(250)
    ids: dict[str, str] = {}
    with ingest.client() as http:
        for offset in range(0, 250, 100):  # lists of 100, 100 and 50
            chunk = posted[offset : offset + 100]
            answer = http.post("/v1/contacts", json=chunk)
            assert answer.status_code == 202
            for outcome in answer.json()["contacts"]:
                assert outcome["status"] == "accepted"
                ids[chunk[outcome["index"]]["numberToCall"]] = outcome["contactId"]
    assert len(ids) == 250

    start_worker(processes=1, threads=4)
    wait_for(lambda: len(sent(sandbox)) >= 250, 60, what="250 contacts at the sandbox")
    by_number = Counter(c["numberToCall"] for c in sent(sandbox))
    assert set(by_number) == set(ids) and set(by_number.values()) == {1}
    for entry in sent(sandbox):
        # The id the HTTP answer gave is the one Levers echoes back in its webhook.
        assert entry["metadata"][RESERVED_METADATA_KEY]["contact_id"] == ids[entry["numberToCall"]]
        assert entry["firstName"].startswith("Name ")
    templates = {r.body.get("aiSettingsTemplateId") for r in sandbox.accepted()}
    assert templates == set(TEMPLATES)


def test_redis_down_is_503_and_a_retry_with_the_key_enqueues_once(
    serve: Callable[[dict[str, str]], IngestServer],
    ingest_env: dict[str, str],
    sandbox: Sandbox,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    private = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        env = {**ingest_env, "REDIS_URL": private.url}
        server = serve(env)
        body = rows(120)
        headers = {"Idempotency-Key": "batch-2024-05-01"}
        with server.client() as http:
            assert http.get("/readyz").status_code == 200
            private.stop()
            down = http.post("/v1/contacts", json=body, headers=headers)
            assert down.status_code == 503
            assert down.headers["retry-after"] == "1"
            assert http.get("/readyz").status_code == 503
            private.start()
            first = http.post("/v1/contacts", json=body, headers=headers)
            again = http.post("/v1/contacts", json=body, headers=headers)
        assert first.status_code == again.status_code == 202
        assert first.json()["accepted"] == 120 and again.json() == first.json()

        start_worker(processes=1, threads=4, REDIS_URL=private.url)
        wait_for(lambda: len(sent(sandbox)) >= 120, 60, what="120 contacts at the sandbox")
        wait_for(
            lambda: (
                not redis.Redis.from_url(private.url).llen(
                    f"{Keys(env['LEVERS_NAMESPACE']).dramatiq}:{CONTACTS_QUEUE}"
                )
            ),
            10,
            what="the contacts queue to drain",
        )
        assert len(sent(sandbox)) == 120
    finally:
        private.stop()


def test_a_transaction_that_fails_part_way_enqueues_nothing(
    serve: Callable[[dict[str, str]], IngestServer],
    ingest_env: dict[str, str],
    redis_server: RedisServer,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    """A Redis user that may run the enqueue script but not SET: the idempotency record, the
    last command of the request's transaction, is refused. Every message queued before it in
    the same MULTI must be discarded with it (a plain pipeline would have enqueued them)."""
    redis_client.execute_command(
        "ACL", "SETUSER", "no-set", "on", ">no-set-password", "~*", "&*", "+@all", "-set"
    )
    try:
        url = redis_server.url.replace("redis://", "redis://no-set:no-set-password@")
        server = serve({**ingest_env, "REDIS_URL": url})
        with server.client() as http:
            answer = http.post("/v1/contacts", json=rows(120), headers={"Idempotency-Key": "k"})
        assert answer.status_code == 503
        queue = f"{Keys(settings.namespace).dramatiq}:{CONTACTS_QUEUE}"
        assert redis_client.llen(queue) == 0
        assert redis_client.hlen(f"{queue}.msgs") == 0
    finally:
        redis_client.execute_command("ACL", "DELUSER", "no-set")
