"""POST /v1/webhooks/levers: Levers' call-ended webhooks, verified and queued for the worker.

No bearer token: the Svix signature is the authentication. In order:

1. Without LEVERS_WEBHOOK_SECRET the route answers 503 (Svix retries for about 27 h, so a
   deployment fixed within that loses nothing; a 404 would look like a wrong URL).
2. The signature and timestamp are checked with the Svix library over the raw body, before
   anything parses it: 401 (the delivery is not authenticated) for missing headers, a
   signature that does not match, or a timestamp more than 5 minutes (Svix's tolerance) from
   this host's clock. A captured
   delivery replayed later fails here; one replayed within the 5 minutes fails at 3.
3. The body is read into the fields kept (`worker.events.read_event`, which never raises: a
   signed payload that is malformed is kept as unmatched, not refused, so it is never a 500).
4. The delivery id (svix-id) is remembered and the event queued for the `levers_outcome`
   actor in one Redis transaction: a duplicate (Svix may deliver twice) or a replay queues
   nothing again (200 `duplicate`); the first delivery gets 202. Redis failing: 503 and
   nothing remembered, so Svix's retry is processed in full.

The answer is fast (a signature check and one transaction); everything else is the worker's.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint's annotations at run time.
import logging
from collections.abc import Mapping
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from producers.ingest.metrics import IngestMetrics
from producers.ingest.models import Problem
from worker.broker import enqueue_pipelined, outcome_message
from worker.events import read_event
from worker.keys import Keys
from worker.once import run_once

log = logging.getLogger("levers.ingest.webhooks")

PATH = "/v1/webhooks/levers"
RETRY_AFTER_SECONDS = 5
TOLERANCE_SECONDS = 300  # Svix's own, fixed in its library: documented, not configurable
MAX_EVENT_ID = 200


class BadDelivery(Exception):
    """The delivery is not a verified webhook of ours: answered 401."""

    def __init__(self, result: str, message: str) -> None:
        self.result = result  # metric label: missing_headers, stale, bad_signature
        super().__init__(message)


class WebhookIntake:
    """Verify deliveries and queue their events, once per delivery id."""

    def __init__(self, secret: str, broker: RedisBroker, keys: Keys, dedupe_seconds: int) -> None:
        # Imported here: the Svix client package takes about a second to import, which only a
        # process that verifies webhooks should pay.
        from svix.webhooks import Webhook

        self.webhook = Webhook(secret)
        self.broker = broker
        self.keys = keys
        self.dedupe_seconds = dedupe_seconds

    def verify(self, body: bytes, headers: Mapping[str, str]) -> tuple[str, float]:
        """(delivery id, Svix timestamp) of a delivery whose signature holds; else BadDelivery."""
        from svix.webhooks import WebhookVerificationError

        wanted = {k.lower(): v for k, v in headers.items() if k.lower().startswith("svix-")}
        try:
            self.webhook.verify(body, wanted)
        except WebhookVerificationError as exc:
            text = str(exc)
            if "Missing" in text:
                raise BadDelivery(
                    "missing_headers",
                    "svix-id, svix-timestamp and svix-signature headers are required",
                ) from None
            if "timestamp" in text.lower() or "Invalid Signature Headers" in text:
                raise BadDelivery(
                    "stale",
                    f"svix-timestamp is missing, malformed, or more than {TOLERANCE_SECONDS} s "
                    "from this server's clock",
                ) from None
            raise BadDelivery("bad_signature", "the signature does not match") from None
        except ValueError:  # a signature that is not "v1,<base64>", a body that is not UTF-8
            raise BadDelivery("bad_signature", "the signature does not match") from None
        event_id = wanted["svix-id"]
        if len(event_id) > MAX_EVENT_ID or not event_id.isprintable():
            raise BadDelivery("bad_signature", "svix-id is not a delivery id")
        return event_id, float(wanted["svix-timestamp"])

    def queue(self, event: dict[str, Any]) -> bool:
        """Queue the event for the worker unless its delivery id was queued before (False)."""
        message = outcome_message(event)
        return run_once(
            self.broker.client,
            self.keys.webhook(event["eventId"]),
            message.message_id,
            self.dedupe_seconds,
            lambda pipe: enqueue_pipelined(self.broker, [message], pipe),
        )


def webhooks_router(intake: WebhookIntake | None, metrics: IngestMetrics) -> APIRouter:
    router = APIRouter(tags=["webhooks"])
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "A delivery seen before (a duplicate or a replay): nothing queued."},
        202: {"description": "Verified and queued for the worker."},
        401: {
            "model": Problem,
            "description": "Not a verified delivery: a header missing, a signature that does "
            f"not match, or a timestamp more than {TOLERANCE_SECONDS} s away.",
        },
        503: {
            "model": Problem,
            "description": "LEVERS_WEBHOOK_SECRET is not set, or Redis is unavailable: nothing "
            "was queued; Svix retries.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    }

    @router.post(
        PATH,
        status_code=202,
        summary="Levers' call-ended webhook (Svix-signed)",
        description="Levers posts `phone_call.ended` here through Svix. Authenticated by the "
        "Svix signature (headers svix-id, svix-timestamp, svix-signature), not by a token.",
        responses=responses,
        openapi_extra={
            # Documented, not validated by FastAPI: a missing header is the Svix library's 401.
            "parameters": [
                {
                    "name": name,
                    "in": "header",
                    "required": True,
                    "description": text,
                    "schema": {"type": "string"},
                }
                for name, text in (
                    ("svix-id", "The delivery's id (the same on Svix's retries)."),
                    ("svix-timestamp", "Seconds since the epoch when it was signed."),
                    ("svix-signature", "v1,<base64 HMAC-SHA256>, space-separated."),
                )
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
        },
    )
    async def post_webhook(request: Request) -> JSONResponse:
        if intake is None:
            metrics.webhooks.labels("unconfigured").inc()
            return _unavailable("webhooks are not configured here: set LEVERS_WEBHOOK_SECRET")
        body = await request.body()
        try:
            event_id, sent_at = intake.verify(body, request.headers)
        except BadDelivery as exc:
            metrics.webhooks.labels(exc.result).inc()
            log.warning("webhook refused", extra={"result": exc.result})
            return JSONResponse({"detail": str(exc)}, status_code=401)
        event = read_event(body, event_id, sent_at)
        try:
            fresh = await run_in_threadpool(intake.queue, event)
        except redis.RedisError as exc:
            metrics.webhooks.labels("unavailable").inc()
            log.warning("webhook not queued: Redis failed", extra={"error": repr(exc)})
            return _unavailable("Redis is unavailable")
        metrics.webhooks.labels("accepted" if fresh else "duplicate").inc()
        log.info("webhook received", extra={"event_id": event_id, "duplicate": not fresh})
        return JSONResponse(
            {"eventId": event_id, "duplicate": not fresh}, status_code=202 if fresh else 200
        )

    return router


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )
