"""The message contract of docs/producers.md, followed by a client that knows only Redis.

`raw_enqueue` is what a producer in another language writes: it uses raw Redis commands and
JSON, nothing of dramatiq or of this project. A real worker must then send what it enqueued.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.broker import contact_message
from worker.contacts import RESERVED_METADATA_KEY
from worker.sandbox import Sandbox
from worker.settings import Settings

pytestmark = pytest.mark.integration

# -- the client part: raw Redis commands only ---------------------------------------------------


def raw_enqueue(
    client: redis.Redis,
    namespace: str,
    payload: dict[str, Any] | list[dict[str, Any]],
    message_id: str | None = None,
) -> str:
    """Enqueue one contact message as docs/producers.md describes; returns its message_id."""
    message_id = message_id or str(uuid.uuid4())
    redis_id = str(uuid.uuid4())  # new for every enqueue, even of the same message
    message = {
        "queue_name": "levers.contacts",
        "actor_name": "levers_aggregate",
        "args": [payload],
        "kwargs": {},
        "options": {"redis_message_id": redis_id},
        "message_id": message_id,
        "message_timestamp": int(time.time() * 1000),
    }
    queue = f"{namespace}:dramatiq:levers.contacts"
    client.execute_command("MULTI")
    client.execute_command("HSET", f"{queue}.msgs", redis_id, json.dumps(message))
    client.execute_command("RPUSH", queue, redis_id)
    client.execute_command("EXEC")
    return message_id


# -- the checks ----------------------------------------------------------------------------------


def sent(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [c for request in sandbox.accepted() for c in request.body["contacts"]]


def test_the_documented_message_has_the_fields_dramatiq_writes() -> None:
    written = json.loads(contact_message({"number": "+966501234567"}).encode())
    assert set(written) == {
        "queue_name",
        "actor_name",
        "args",
        "kwargs",
        "options",
        "message_id",
        "message_timestamp",
    }
    assert (written["queue_name"], written["actor_name"]) == ("levers.contacts", "levers_aggregate")


def test_contacts_enqueued_with_raw_redis_commands_are_sent(
    redis_server: Any,
    settings: Settings,
    sandbox: Sandbox,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # One connection of its own (MULTI holds per connection), no helper of this project.
    client = redis.Redis.from_url(
        redis_server.url, decode_responses=True, single_connection_client=True
    )
    namespace = settings.namespace
    single = raw_enqueue(
        client,
        namespace,
        {
            "number": "+966501234567",
            "first_name": "Sara",
            "metadata": {"crm_id": "42"},
            "prompt_tags": {"amount": "120"},
        },
    )
    chunk = [{"number": f"+96650{i:07d}", "first_name": f"Name {i}"} for i in range(1, 4)]
    chunked = raw_enqueue(client, namespace, chunk)
    # A producer that did not see EXEC's reply sends the same message again, same message_id.
    raw_enqueue(client, namespace, chunk, message_id=chunked)
    raw_enqueue(client, namespace, {"number": "not a number"})  # rejected by the worker

    start_worker(processes=1, threads=2)
    wait_for(lambda: len(sent(sandbox)) >= 4, 30, what="4 contacts at the sandbox")
    wait_for(lambda: client.llen(f"{namespace}:dramatiq:levers.contacts") == 0, 10)
    by_number = {c["numberToCall"]: c for c in sent(sandbox)}
    assert Counter(c["numberToCall"] for c in sent(sandbox)).most_common(1)[0][1] == 1
    assert set(by_number) == {"+966501234567", "+966500000001", "+966500000002", "+966500000003"}
    first = by_number["+966501234567"]
    assert first["firstName"] == "Sara" and first["promptTags"] == {"amount": "120"}
    assert first["metadata"]["crm_id"] == "42"
    # Contact ids: the message_id for one contact, <message_id>:<i> for the i-th of a list.
    assert first["metadata"][RESERVED_METADATA_KEY]["contact_id"] == single
    for i in range(3):
        entry = by_number[f"+96650{i + 1:07d}"]
        assert entry["metadata"][RESERVED_METADATA_KEY]["contact_id"] == f"{chunked}:{i}"
    client.close()
