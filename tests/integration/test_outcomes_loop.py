"""The loop closed on a real run: the sandbox sends signed call-ended webhooks to levers-ingest,
a real levers-worker records them, settles unknown outcomes, schedules retries and calls back
producers; levers-admin shows it all. Duplicates, out-of-order and unmatched deliveries
included."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from producers.api import Producer
from producers.ingest.app import create_app
from tests.integration.ingest.conftest import TOKEN, IngestServer
from tests.integration.test_pipeline import metric
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.deadletters import DeadLetters
from worker.keys import Keys
from worker.notify import CallbackDeadLetters
from worker.outcomes import OutcomeStore
from worker.sandbox import Sandbox
from worker.sandbox_webhooks import sign
from worker.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CALLBACK_SECRET = "whsec_c2VjcmV0LWZvci10aGUtY2FsbGJhY2tzIQ=="
TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
HOOK = "/v1/webhooks/levers"


@pytest.fixture
def ingest(worker_env: dict[str, str]) -> Iterator[IngestServer]:
    env = {**worker_env, "LEVERS_INGEST_TOKENS": TOKEN, "LEVERS_WEBHOOK_SECRET": SECRET}
    server = IngestServer(create_app(Settings.from_env(env))).start()
    yield server
    server.stop()


@pytest.fixture
def store(settings: Settings, redis_client: redis.Redis) -> OutcomeStore:
    return OutcomeStore(redis_client, Keys(settings.namespace), settings.outcome_retention_seconds)


def admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from worker.admin import main; raise SystemExit(main())",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def outcomes_of(store: OutcomeStore, ids: list[str]) -> dict[str, dict[str, Any]]:
    found = {i: store.contact(i) for i in ids}
    return {i: r for i, r in found.items() if r is not None}


def test_outcomes_come_back_once_each_whatever_svix_sends(
    sandbox: Sandbox,
    ingest: IngestServer,
    producer: Producer,
    store: OutcomeStore,
    settings: Settings,
    worker_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    numbers = [f"+96655{i:07d}" for i in range(20)]
    sandbox.webhooks.configure(
        url=ingest.url + HOOK,
        secret=SECRET,
        mix={"answered": 1},
        outcome_for={numbers[0]: "no_answer", numbers[1]: "voicemail"},
        duplicate_rate=1.0,  # every event delivered twice
        out_of_order=True,
        jitter_seconds=0.5,
    )
    result = producer.enqueue_contacts(
        [{"number": n, "template_id": TEMPLATE if i % 2 else None} for i, n in enumerate(numbers)]
    )
    ids = [contact_id for _, contact_id in result.accepted]
    start_worker(1, 4, LEVERS_BATCH_MAX_SIZE="8")
    found = wait_for(
        lambda: (o := outcomes_of(store, ids)) and len(o) == 20 and o, 60, what="outcomes"
    )
    assert found[ids[0]]["outcome"]["endedReason"] == "customer-did-not-answer"
    assert found[ids[1]]["outcome"]["endedReason"] == "voicemail"
    assert {found[i]["outcome"]["deliveryStatus"] for i in ids[2:]} == {"pass"}
    # Each event twice: the second delivery of each was a duplicate, queued once.
    deliveries = sandbox.webhooks.deliveries()
    assert len(deliveries) == 20 and all(d.statuses.count(202) == 1 for d in deliveries)
    wait_for(lambda: sum(d.statuses.count(200) for d in sandbox.webhooks.deliveries()) == 20, 10)
    # A captured delivery replayed later is refused by its old timestamp.
    assert sandbox.webhooks.replay(deliveries[0].event_id) in (200, 401)

    # levers-admin: the JSON has the outcome; the text masks the number.
    shown = admin(worker_env, "contacts", "show", ids[0], "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["outcome"]["deliveryStatus"] == "fail"
    assert record["outcome"]["endedReason"] == "customer-did-not-answer"
    assert record["outcome"]["duration"] == 0
    assert record["numberTo"] == numbers[0]
    text = admin(worker_env, "contacts", "show", ids[0])
    assert numbers[0] not in text.stdout and "+96655*****00" in text.stdout
    batch = json.loads(admin(worker_env, "batches", "show", record["batchId"], "--json").stdout)
    assert record["contactId"] in [o["contactId"] for o in batch["outcomes"]]
    assert all("deliveryStatus" in o["outcome"] for o in batch["outcomes"])
    batch_text = admin(worker_env, "batches", "show", record["batchId"]).stdout
    assert "outcomes (" in batch_text and numbers[0] not in batch_text
    assert admin(worker_env, "contacts", "show", "nobody").returncode == 1

    # An event that matches nothing here (another deployment's batch) is kept and counted.
    body = json.dumps(
        {
            "deliveryStatus": "pass",
            "numberTo": "+966501234567",
            "metadata": {
                "requestMetadata": {"levers_batcher": {"batch_id": "f" * 32, "contact_id": "x"}}
            },
        }
    ).encode()
    answer = httpx.post(
        ingest.url + HOOK, content=body, headers=sign(SECRET, "msg_foreign", time.time(), body)
    )
    assert answer.status_code == 202
    wait_for(lambda: store.unmatched(), 20, what="the unmatched event")
    unmatched = json.loads(admin(worker_env, "outcomes", "unmatched", "--json").stdout)
    assert (unmatched["eventId"], unmatched["reason"]) == ("msg_foreign", "unknown_batch")

    scrape = httpx.get(f"http://127.0.0.1:{settings.metrics_port}/metrics").text
    ended = 'levers_calls_ended_total{call_output="%s",delivery_status="%s"}'
    assert metric(scrape, ended % ("interested", "pass")) == 18
    assert metric(scrape, ended % ("none", "fail")) == 2
    assert metric(scrape, 'levers_calls_ended_by_reason_total{ended_reason="voicemail"}') == 1
    assert metric(scrape, 'levers_outcome_events_unmatched_total{reason="unknown_batch"}') == 1
    assert metric(scrape, "levers_call_end_seconds_count") == 20


def test_an_unknown_outcome_is_settled_by_its_event(
    sandbox: Sandbox,
    ingest: IngestServer,
    producer: Producer,
    store: OutcomeStore,
    settings: Settings,
    redis_client: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    # Levers takes the request, calls, and its answer never reaches us: unknown outcomes.
    sandbox.configure(drop_rate=1.0)
    sandbox.webhooks.configure(url=ingest.url + HOOK, secret=SECRET, delay_seconds=1.0)
    numbers = [f"+96656{i:07d}" for i in range(5)]
    ids = [cid for _, cid in producer.enqueue_contacts([{"number": n} for n in numbers]).accepted]
    dead = DeadLetters(redis_client, Keys(settings.namespace))
    start_worker(1, 2)
    found = wait_for(
        lambda: (o := outcomes_of(store, ids)) and len(o) == 5 and o, 60, what="outcomes"
    )
    # Each was called (Levers reported it): they leave the dead letters, marked settled.
    wait_for(
        lambda: dead.count() == 0 and all((r := store.contact(i)) and r["settled"] for i in ids),
        30,
        what="the unknown outcomes to be settled",
    )
    assert {found[i]["batchId"] for i in ids} == {
        r.body["contacts"][0]["metadata"]["levers_batcher"]["batch_id"] for r in sandbox.accepted()
    }
    assert int(redis_client.hget(Keys(settings.namespace).stats, "contacts_settled") or 0) == 5


class Receiver:
    """A producer's callback endpoint that always fails, recording what it gets."""

    def __init__(self, status: int = 500) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_retry_is_scheduled_and_a_failing_callback_is_dead_lettered(
    sandbox: Sandbox,
    ingest: IngestServer,
    producer: Producer,
    store: OutcomeStore,
    settings: Settings,
    redis_client: redis.Redis,
    worker_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    receiver = Receiver(500)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f"""
[default]
window = "always"

[caps]
limits = []
min_gap = "0"

[templates."{TEMPLATE}".retries]
ended_reasons = ["customer-did-not-answer"]
delays = ["1m"]

[templates."{TEMPLATE}".outcomes]
url = "{receiver.url}"
""",
        encoding="utf-8",
    )
    number = "+966570000001"
    sandbox.webhooks.configure(url=ingest.url + HOOK, secret=SECRET, mix={"no_answer": 1})
    [(_, contact_id)] = producer.enqueue_contacts(
        [{"number": number, "template_id": TEMPLATE}]
    ).accepted
    try:
        start_worker(
            1,
            2,
            LEVERS_POLICY_FILE=str(policy),
            LEVERS_DEFAULT_WINDOW="",  # the file names the window
            LEVERS_CALLBACK_SECRET=CALLBACK_SECRET,
            LEVERS_CALLBACK_MAX_ATTEMPTS="3",
            LEVERS_CALLBACK_BACKOFF_SECONDS="0.2",
        )
        record = wait_for(
            lambda: (r := store.contact(contact_id)) and "retry" in r and r, 60, what="the retry"
        )
        retry = record["retry"]
        # The n-th retry of this contact, through the aggregator with a key of its own, not
        # before the rule's delay after the event was handled. (Waiting for that time is the
        # holds' job: their tests cover it.)
        assert retry["number"] == 1 and retry["dedupeKey"] == f"retry:{contact_id}:1"
        assert record["receivedAt"] + 60 - 5 <= retry["notBefore"] <= record["receivedAt"] + 60 + 5
        assert retry["contactId"] != contact_id

        dead = CallbackDeadLetters(redis_client, Keys(settings.namespace))
        wait_for(
            lambda: any(r["id"] == contact_id for r in dead.select()), 60, what="the dead callback"
        )
        mine = [(h, b) for h, b in receiver.requests if h["svix-id"] == f"msg_{contact_id}"]
        assert len(mine) == 3  # LEVERS_CALLBACK_MAX_ATTEMPTS
        from svix.webhooks import Webhook

        for headers, body in mine:
            Webhook(CALLBACK_SECRET).verify(body, headers)
        payload = json.loads(mine[0][1])
        assert payload["contactId"] == contact_id
        assert payload["outcome"]["endedReason"] == "customer-did-not-answer"
        assert payload["retry"]["dedupeKey"] == f"retry:{contact_id}:1"
        listed = admin(worker_env, "callbacks", "list", "--json")
        entries = [json.loads(line) for line in listed.stdout.splitlines()]
        assert any(e["id"] == contact_id and e["attempts"] == 3 for e in entries)
    finally:
        receiver.stop()
