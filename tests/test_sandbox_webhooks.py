"""The sandbox's call-ended webhooks over real HTTP: signed so the Svix library verifies them,
one per accepted contact with our metadata echoed, duplicates and out-of-order deliveries on
demand, failures retried as Svix does, and a captured delivery replayed as it was."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from svix.webhooks import Webhook

from tests.servers import wait_for
from worker.sandbox import BULK_PATH, Sandbox, SandboxConfig
from worker.sandbox_webhooks import WebhookConfig

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 500 if receiver.fail_first > 0 else 204
                receiver.fail_first -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, body in self.got]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def send(sandbox: Sandbox, numbers: list[str]) -> None:
    token = httpx.post(
        f"{sandbox.url}/auth/v1/api-key/auth",
        json={"clientId": "sandbox-client", "clientSecret": "sandbox-secret"},
    ).json()["access_token"]
    contacts = [
        {"numberToCall": n, "metadata": {"levers_batcher": {"contact_id": f"c{i}"}}}
        for i, n in enumerate(numbers)
    ]
    answer = httpx.post(
        sandbox.url + BULK_PATH,
        json={"contacts": contacts},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201


NUMBERS = ["+966501234567", "+966501234568", "+966501234569"]


def test_each_accepted_contact_gets_a_signed_flat_event(receiver: Receiver) -> None:
    config = WebhookConfig(
        url=receiver.url, secret=SECRET, outcome_for={NUMBERS[1]: "no_answer"}, seed=1
    )
    with Sandbox(SandboxConfig(), webhooks=config) as sandbox:
        send(sandbox, NUMBERS)
        wait_for(lambda: len(receiver.got) == 3, 10, what="three webhooks")
    for headers, body in receiver.got:
        Webhook(SECRET).verify(body, headers)
    by_number = {p["numberTo"]: p for p in receiver.payloads()}
    assert set(by_number) == set(NUMBERS)
    failed = by_number[NUMBERS[1]]
    assert (failed["deliveryStatus"], failed["endedReason"]) == ("fail", "customer-did-not-answer")
    assert failed["metadata"] == {"requestMetadata": {"levers_batcher": {"contact_id": "c1"}}}
    for name in (
        "providerCallId",
        "numberFrom",
        "providerStatus",
        "duration",
        "summary",
        "callOutput",
        "callOutputReasoning",
        "sentimentOutput",
        "transcription",
        "recordingUrl",
    ):
        assert name in failed


def test_duplicates_out_of_order_retries_and_replays_on_demand(receiver: Receiver) -> None:
    config = WebhookConfig(
        url=receiver.url, secret=SECRET, duplicate_rate=1.0, out_of_order=True, retry_seconds=0.05
    )
    receiver.fail_first = 1  # the first delivery is answered 500 and retried
    with Sandbox(SandboxConfig(), webhooks=config) as sandbox:
        send(sandbox, NUMBERS)
        wait_for(lambda: len(receiver.got) == 7, 10, what="3 events, 3 duplicates, 1 retry")
        ids = [h["svix-id"] for h, _ in receiver.got]
        assert len(set(ids)) == 3 and all(ids.count(i) >= 2 for i in set(ids))
        # Reversed: the request's last contact is called back first.
        assert receiver.payloads()[0]["numberTo"] == NUMBERS[-1]
        first = sandbox.webhooks.deliveries()[0]
        assert sandbox.webhooks.replay(first.event_id) == 204
        headers, body = receiver.got[-1]
        assert (headers["svix-timestamp"], body) == (
            first.first_headers["svix-timestamp"],
            first.body,
        )
        sandbox.webhooks.redeliver(first.event_id)
        wait_for(lambda: len(receiver.got) == 9, 10, what="the redelivery")
        assert receiver.got[-1][0]["svix-id"] == first.event_id


def test_without_a_url_nothing_is_sent(receiver: Receiver) -> None:
    with Sandbox(SandboxConfig()) as sandbox:
        send(sandbox, NUMBERS[:1])
        assert sandbox.webhooks.deliveries() == []


def test_a_config_without_a_secret_or_with_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookConfig(url="http://x")
    with pytest.raises(ValueError, match="unknown outcomes"):
        WebhookConfig(mix={"hung_up": 1})
