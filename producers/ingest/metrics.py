"""Prometheus metrics of levers-ingest, on a registry of its own, served at its /metrics.

One ingest process is one series set (it is not a dramatiq worker and shares no multiprocess
directory). Labels stay bounded: the route template (or `other`), the status code, the outcome
and the rejection reason; never a number, a token or an idempotency key.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producers.ingest.idempotency import Outcomes

WEBHOOK_RESULTS = (
    "accepted",
    "duplicate",
    "missing_headers",
    "stale",
    "bad_signature",
    "unconfigured",
    "unavailable",
)
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "levers_ingest_requests",
            "HTTP requests answered, by route template and status code.",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "levers_ingest_request_duration_seconds",
            "From a request's arrival to the end of its answer, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.contacts = Counter(
            "levers_ingest_contacts",
            "Contacts of POST /v1/contacts by outcome (accepted: enqueued; rejected: not), "
            "replays of an Idempotency-Key not counted again.",
            ["outcome"],
            registry=r,
        )
        self.rejected = Counter(
            "levers_ingest_contacts_rejected",
            "Contacts rejected by validation, by reason.",
            ["reason"],
            registry=r,
        )
        self.replays = Counter(
            "levers_ingest_idempotent_replays",
            "Requests answered from the stored answer of an earlier one with the same "
            "Idempotency-Key (nothing enqueued).",
            registry=r,
        )
        self.webhooks = Counter(
            "levers_ingest_webhooks",
            "Deliveries to POST /v1/webhooks/levers by result: accepted (verified and queued), "
            "duplicate (a delivery id seen before), missing_headers, stale (timestamp outside "
            "the tolerance), bad_signature, unconfigured (no LEVERS_WEBHOOK_SECRET), "
            "unavailable (Redis failed).",
            ["result"],
            registry=r,
        )
        self.console_logins = Counter(
            "levers_console_logins",
            "Console login attempts by result: ok, refused (a wrong name, password or token).",
            ["result"],
            registry=r,
        )
        self.console_actions = Counter(
            "levers_console_actions",
            "Console actions by action (pause, resume, cancel, holds release/expire, "
            "dead-letters replay/purge, suppress add/remove, reveal) and result: done, or "
            "refused (no session, a missing or wrong CSRF token, no note, bad input).",
            ["action", "result"],
            registry=r,
        )
        for result in ("ok", "refused"):
            self.console_logins.labels(result)
        for outcome in ("accepted", "rejected"):
            self.contacts.labels(outcome)
        for result in WEBHOOK_RESULTS:
            self.webhooks.labels(result)

    def count(self, outcomes: Outcomes) -> None:
        self.contacts.labels("accepted").inc(outcomes.accepted)
        self.contacts.labels("rejected").inc(len(outcomes.rejections))
        for _, reason, _ in outcomes.rejections:
            self.rejected.labels(reason).inc()


class RequestMetrics:
    """ASGI middleware: counts every HTTP request by route and status, and times it.

    The route is the matched route's template; a request that matched none (a 404, or one
    answered before routing, such as a 413) counts under its path when that is one of
    `paths`, else under `other`, so scanners cannot grow the label set.
    """

    def __init__(self, app: ASGIApp, metrics: IngestMetrics, paths: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = self._route(scope)
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None) or scope.get("path", "")
        return path if path in self.paths else "other"
