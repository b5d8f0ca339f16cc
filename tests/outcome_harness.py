"""A harness for the outcome tests: the outbox and the outcome runtime on a real redis-server,
with a fake clock, and events made the way Levers makes them (from the correlation the sender
put in the request). A helper, not a test module."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import redis
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from prometheus_client import CollectorRegistry

from tests.conftest import FakeClock
from worker.broker import BATCHES_QUEUE, build_broker
from worker.buffers import BufferConfig, Buffers
from worker.contacts import Contact, validate_contact
from worker.events import read_event
from worker.keys import Keys
from worker.outbox import Claim, Dead, Outbox, OutboxConfig, Sent
from worker.outcome_metrics import OutcomeMetrics
from worker.outcome_runtime import OutcomeRuntime
from worker.policy import parse_policy
from worker.policy.policy import CallingPolicy
from worker.sender import correlate
from worker.settings import Settings

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
NAMESPACE = "oc"
ANSWERED = {"deliveryStatus": "pass", "endedReason": "customer-ended-call", "duration": 42.5}
NO_ANSWER = {"deliveryStatus": "fail", "endedReason": "customer-did-not-answer", "duration": 0}


def retry_policy(*delays: str) -> CallingPolicy:
    return parse_policy(
        {
            "caps": {"limits": [], "min_gap": "0"},
            "templates": {
                TEMPLATE: {
                    "retries": {"delivery_status": ["fail"], "delays": list(delays)},
                    "outcomes": {"actor": "crm_outcome", "queue": "crm"},
                }
            },
        }
    )


class Loop:
    def __init__(
        self,
        client: redis.Redis,
        clock: FakeClock,
        policy: CallingPolicy | None = None,
        transport: httpx.MockTransport | None = None,
        **env: str,
    ) -> None:
        self.client = client
        self.clock = clock
        self.keys = Keys(NAMESPACE)
        self.settings = Settings.from_env({"LEVERS_NAMESPACE": NAMESPACE, **env})
        self.buffers = Buffers(client, self.keys, BufferConfig(batch_max_size=1), clock)
        tokens = StubBroker()
        tokens.declare_queue(BATCHES_QUEUE)
        self.outbox = Outbox(client, self.keys, OutboxConfig(), tokens, clock)
        self.broker = build_broker(self.settings, client=client)
        self.metrics = OutcomeMetrics(CollectorRegistry())
        self.runtime = OutcomeRuntime.build(
            self.settings,
            self.broker,
            policy or parse_policy({}),
            self.metrics,
            clock=clock,
            http=httpx.Client(transport=transport or httpx.MockTransport(_ok)),
        )
        self.serial = 0

    def claim(self, template: str | None = TEMPLATE, size: int = 2) -> Claim:
        """A batch of `size` contacts, cut and claimed (not yet sent)."""
        self.buffers.config = BufferConfig(batch_max_size=size)
        batch_id = None
        for _ in range(size):
            self.serial += 1
            contact = Contact(
                number=f"+9665012{self.serial:05d}",
                template_id=template,
                first_name=f"Customer {self.serial}",
                prompt_tags={"amount": str(self.serial)},
                metadata={"crm_id": str(self.serial)},
            )
            batch_id = self.buffers.append(contact, f"m{self.serial}").batch_id
        assert batch_id is not None
        return self._claim(batch_id)

    def retry_claim(self, message: Message[Any]) -> Claim:
        """The retry a message carries, appended as the aggregator would, cut and claimed."""
        [row] = message.args[0]
        self.buffers.config = BufferConfig(batch_max_size=1)
        result = self.buffers.append(validate_contact(row), f"{message.message_id}:0")
        assert result.batch_id is not None, result
        return self._claim(result.batch_id)

    def _claim(self, batch_id: str) -> Claim:
        self.outbox.queue(batch_id)
        claim = self.outbox.pick(batch_id, "owner")
        assert claim.verdict == "claimed"
        self.runtime.ledger.remember(claim)
        assert self.outbox.begin(claim, "owner") is not None
        return claim

    def sent(self, claim: Claim) -> None:
        assert self.outbox.finish(claim, "owner", Sent(201)) is not None

    def unknown(self, claim: Claim) -> None:
        assert self.outbox.finish(claim, "owner", Dead("unknown_outcome", None, "x")) is not None

    def event(
        self, claim: Claim, index: int, outcome: dict[str, Any], event_id: str | None = None
    ) -> dict[str, Any]:
        """The event levers-ingest queues for the call of the claim's `index`-th contact."""
        contact = correlate(claim)[index]
        payload = {
            "providerCallId": f"call_{index}",
            "numberFrom": "+966112345678",
            "numberTo": contact["numberToCall"],
            "providerStatus": "completed",
            "summary": "private",
            "transcription": "private words",
            "recordingUrl": "https://recordings.invalid/x.mp3",
            "metadata": {"requestMetadata": contact["metadata"]},
            **outcome,
        }
        body = json.dumps(payload).encode()
        return read_event(body, event_id or f"msg_{uuid.uuid4().hex}", self.clock())

    def handle(self, event: dict[str, Any]) -> str:
        return self.runtime.handler.handle(event)

    def queued(self, queue: str) -> list[Message[Any]]:
        """Messages waiting on one of our broker's queues (oldest first)."""
        name = f"{self.keys.dramatiq}:{queue}"
        ids = [i.decode() for i in self.client.lrange(name, 0, -1)]
        raw = self.client.hmget(f"{name}.msgs", ids) if ids else []
        return [Message.decode(r) for r in raw if r]


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(204)
