"""The sandbox's call-ended webhooks: what Levers sends through Svix after each call.

For every contact of a bulk request the sandbox accepted (a dropped answer included: Levers
took the request, so it calls), a `phone_call.ended` event is POSTed to `WebhookConfig.url`,
signed with the Svix library exactly as Svix signs (headers svix-id, svix-timestamp,
svix-signature), with a flat payload as Levers documents it and our metadata echoed back
under `metadata.requestMetadata`.

    outcome mix    which outcome each call gets, by weight (`OUTCOMES` names them), or per
                   number (`outcome_for`), so a test can make one number go unanswered
    delay, jitter  seconds after the request before an event leaves, plus a random extra per
                   event (a jitter makes deliveries arrive out of order)
    out_of_order   each request's events in reverse order
    duplicate_rate a fraction of events delivered twice with the same svix-id
    retries        a non-2xx answer or a refused connection is retried (Svix does for ~27 h;
                   here `max_attempts` times, `retry_seconds` doubled each time)

On demand: `redeliver(event_id)` sends a recorded event again under its id with a fresh
timestamp (what Svix's retry or manual resend does); `replay(event_id)` sends the very bytes
and headers first sent (a captured delivery replayed by someone else).
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from worker.signing import svix_headers

# name -> (deliveryStatus, providerStatus, endedReason, callOutput, duration range s, sentiment)
OUTCOMES: dict[str, tuple[str, str, str, str | None, tuple[int, int], str | None]] = {
    "answered": ("pass", "completed", "customer-ended-call", "interested", (20, 180), "positive"),
    "declined": (
        "pass",
        "completed",
        "assistant-ended-call",
        "not_interested",
        (10, 60),
        "neutral",
    ),
    "no_answer": ("fail", "no-answer", "customer-did-not-answer", None, (0, 0), None),
    "voicemail": ("fail", "completed", "voicemail", None, (5, 30), None),
    "busy": ("fail", "busy", "customer-busy", None, (0, 0), None),
}
DEFAULT_MIX = {"answered": 0.6, "declined": 0.15, "no_answer": 0.15, "voicemail": 0.1}
NUMBER_FROM = "+966112345678"


@dataclass(frozen=True)
class WebhookConfig:
    url: str | None = None  # None: no webhooks
    secret: str | None = None  # whsec_...
    mix: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    outcome_for: Mapping[str, str] = field(default_factory=dict)  # E.164 -> outcome name
    delay_seconds: float = 0.0
    jitter_seconds: float = 0.0
    out_of_order: bool = False
    duplicate_rate: float = 0.0
    max_attempts: int = 5
    retry_seconds: float = 0.5
    seed: int | None = None

    def __post_init__(self) -> None:
        names = set(self.mix) | set(self.outcome_for.values())
        unknown = sorted(names - set(OUTCOMES))
        if unknown:
            raise ValueError(f"unknown outcomes {unknown}: choose from {sorted(OUTCOMES)}")
        if not any(w > 0 for w in self.mix.values()) or any(w < 0 for w in self.mix.values()):
            raise ValueError("the outcome mix needs weights >= 0, one of them > 0")
        if self.url and not self.secret:
            raise ValueError("webhooks need the secret to sign them with")
        if not 0 <= self.duplicate_rate <= 1 or self.delay_seconds < 0 or self.jitter_seconds < 0:
            raise ValueError("duplicate_rate is a fraction; delay and jitter are >= 0")


def parse_mix(text: str) -> dict[str, float]:
    """`answered=0.7,no_answer=0.3` -> {"answered": 0.7, "no_answer": 0.3}."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition("=")
        mix[name.strip()] = float(weight or 1)
    return mix


def sign(secret: str, event_id: str, timestamp: float, body: bytes) -> dict[str, str]:
    """The Svix headers of a delivery, signed with the Svix library."""
    return svix_headers(secret, event_id, timestamp, body)


@dataclass
class Delivery:
    event_id: str
    number: str
    outcome: str
    body: bytes
    first_headers: dict[str, str] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)  # 0 = no answer (connection failed)

    @property
    def delivered(self) -> bool:
        return any(200 <= s < 300 for s in self.statuses)


class WebhookSender:
    """Schedules and POSTs the events, from one daemon thread."""

    def __init__(self, config: WebhookConfig, clock: Any = time.time) -> None:
        self._config = config
        self._clock = clock
        self._random = random.Random(config.seed)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: list[tuple[float, int, str, bool, int]] = []  # due, seq, id, fresh, attempt
        self._seq = itertools.count()
        self._deliveries: dict[str, Delivery] = {}
        self._stop = False
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=httpx.Timeout(5.0))

    @property
    def config(self) -> WebhookConfig:
        with self._lock:
            return self._config

    def configure(self, **changes: Any) -> None:
        with self._lock:
            self._config = dataclasses.replace(self._config, **changes)
            if "seed" in changes:
                self._random = random.Random(self._config.seed)

    def start(self) -> WebhookSender:
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(10)
        self._http.close()

    # -- what the sandbox calls --------------------------------------------------------

    def on_accepted(self, body: Mapping[str, Any]) -> None:
        """Schedule the events of an accepted bulk request."""
        with self._lock:
            config = self._config
            if not config.url:
                return
            contacts = list(body.get("contacts") or [])
            if config.out_of_order:
                contacts.reverse()
            now = self._clock()
            for contact in contacts:
                delivery = self._event(config, contact)
                self._deliveries[delivery.event_id] = delivery
                due = now + config.delay_seconds + self._random.uniform(0, config.jitter_seconds)
                self._push(due, delivery.event_id, fresh=True)
                if self._random.random() < config.duplicate_rate:
                    self._push(due + 0.01, delivery.event_id, fresh=False)
            self._wake.notify_all()

    # -- on demand ---------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries.values())

    def redeliver(self, event_id: str) -> None:
        """Send a recorded event again under its id, with a fresh timestamp (Svix's resend)."""
        with self._lock:
            self._push(self._clock(), event_id, fresh=True)
            self._wake.notify_all()

    def replay(self, event_id: str) -> int:
        """POST the very bytes and headers first sent for `event_id`; returns the status."""
        delivery = self._deliveries[event_id]
        return self._post(delivery.body, delivery.first_headers)

    # -- inside --------------------------------------------------------------------------

    def _push(self, due: float, event_id: str, *, fresh: bool, attempt: int = 1) -> None:
        heapq.heappush(self._queue, (due, next(self._seq), event_id, fresh, attempt))

    def _event(self, config: WebhookConfig, contact: Mapping[str, Any]) -> Delivery:
        number = str(contact.get("numberToCall", ""))
        name = (
            config.outcome_for.get(number)
            or self._random.choices(list(config.mix), weights=list(config.mix.values()))[0]
        )
        status, provider, reason, output, (low, high), sentiment = OUTCOMES[name]
        duration = self._random.randint(low, high)
        payload = {
            "providerCallId": f"call_{uuid.uuid4().hex}",
            "numberFrom": NUMBER_FROM,
            "numberTo": number,
            "providerStatus": provider,
            "deliveryStatus": status,
            "duration": duration,
            "summary": f"A sandbox call that ended as {name}.",
            "endedReason": reason,
            "callOutput": output,
            "callOutputReasoning": "The sandbox chose this outcome.",
            "sentimentOutput": sentiment,
            "transcription": "AI: Hello. Customer: ..." if duration else "",
            "recordingUrl": f"https://recordings.sandbox.invalid/{uuid.uuid4().hex}.mp3",
            "metadata": {"requestMetadata": contact.get("metadata") or {}},
        }
        body = json.dumps(payload).encode()
        return Delivery(f"msg_{uuid.uuid4().hex}", number, name, body)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stop and (not self._queue or self._queue[0][0] > self._clock()):
                    wait = self._queue[0][0] - self._clock() if self._queue else None
                    self._wake.wait(None if wait is None else max(0.005, min(wait, 0.5)))
                if self._stop:
                    return
                _, _, event_id, fresh, attempt = heapq.heappop(self._queue)
                delivery = self._deliveries[event_id]
                config = self._config
            headers = sign(config.secret or "", event_id, self._clock(), delivery.body)
            if not delivery.first_headers:
                delivery.first_headers = headers
            status = self._post(delivery.body, headers, config.url)
            with self._lock:
                delivery.statuses.append(status)
                if not 200 <= status < 300 and fresh and attempt < config.max_attempts:
                    wait = config.retry_seconds * 2 ** (attempt - 1)
                    self._push(self._clock() + wait, event_id, fresh=True, attempt=attempt + 1)

    def _post(self, body: bytes, headers: Mapping[str, str], url: str | None = None) -> int:
        try:
            answer = self._http.post(url or self.config.url or "", content=body, headers=headers)
        except httpx.HTTPError:
            return 0
        return answer.status_code
