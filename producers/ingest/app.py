"""The levers-ingest ASGI app: `create_app(settings)` builds it; nothing happens at import.

Routers, each with its own auth: `/v1/contacts` (bearer tokens, `contacts`), Levers' webhooks
at `/v1/webhooks/levers` (the Svix signature, `webhooks`), the operator console at `/console`
(its own logins, LEVERS_CONSOLE_USERS or LEVERS_CONSOLE_TOKENS; see docs/console.md), and the
operations routes (`/healthz`, `/readyz`, `/metrics`, open like the worker's).

    uvicorn --factory producers.ingest.app:app_from_env   # or: levers-ingest
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import redis
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.concurrency import run_in_threadpool

from producers.api import Producer
from producers.ingest.console.routes import console_off, console_routers
from producers.ingest.contacts import contacts_router, issue
from producers.ingest.intake import Intake
from producers.ingest.limits import BodyLimit
from producers.ingest.metrics import IngestMetrics, RequestMetrics
from producers.ingest.models import Health, Problem, contact_schema
from producers.ingest.webhooks import WebhookIntake, webhooks_router
from worker.broker import build_broker
from worker.connection import connect
from worker.errors import SettingsError
from worker.keys import Keys
from worker.settings import Settings

# A request waits at most this long on a Redis that does not answer before it gets a 503.
REDIS_CONNECT_TIMEOUT_SECONDS = 2.0
REDIS_TIMEOUT_SECONDS = 5.0

DESCRIPTION = """\
Hand contacts to levers-batcher over HTTP, from a backend in any language. Accepted contacts
are grouped into Levers bulk AI phone-call requests by the worker, exactly as those of the
Python producer. Every contact is a call to a real person: use an `Idempotency-Key` so that a
retried request enqueues nothing twice.
"""


def redis_client(settings: Settings) -> redis.Redis:
    """The ingest's Redis client. redis-py's own retries are off: a MULTI/EXEC retried after
    its reply was lost would enqueue the request twice. A failure is a 503 to the client,
    whose retry with its Idempotency-Key is safe."""
    return connect(
        settings,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def operations_router(intake: Intake, metrics: IngestMetrics) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process serves requests", response_model=Health)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @router.get(
        "/readyz",
        summary="Readiness: Redis answers",
        response_model=Health,
        responses={503: {"model": Problem, "description": "Redis does not answer."}},
    )
    async def readyz() -> JSONResponse:
        try:
            await run_in_threadpool(intake.ready)
        except redis.RedisError:
            return JSONResponse({"detail": "Redis does not answer"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @router.get(
        "/metrics",
        summary="Prometheus metrics of this process",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422 (a parameter such as Idempotency-Key) in the shape of ours."""
    assert isinstance(exc, RequestValidationError)
    detail = [issue(list(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


def auth_problem(settings: Settings) -> str | None:
    """Why these settings must not serve contacts, or None: no tokens without the opt-out."""
    tokens, no_auth = settings.ingest_token_list, settings.ingest_insecure_no_auth
    if not tokens and not no_auth:
        return (
            "LEVERS_INGEST_TOKENS (or LEVERS_INGEST_TOKENS_FILE) is not set: levers-ingest "
            "needs bearer tokens (LEVERS_INGEST_INSECURE_NO_AUTH=true serves anyone, for "
            "local demos only)"
        )
    if tokens and no_auth:
        return "LEVERS_INGEST_TOKENS and LEVERS_INGEST_INSECURE_NO_AUTH=true: set one, not both"
    return None


def create_app(
    settings: Settings,
    *,
    producer: Producer | None = None,
    metrics: IngestMetrics | None = None,
) -> FastAPI:
    """The app. Without `producer`, one is built on the ingest's Redis client (connections
    open on first use) and closed when the app shuts down. Raises `SettingsError` when there
    are no tokens and no explicit opt-out (`auth_problem`)."""
    problem = auth_problem(settings)
    if problem:
        raise SettingsError([problem])
    owned = producer is None
    if producer is None:
        producer = Producer(settings, build_broker(settings, client=redis_client(settings)))
    intake = Intake(producer, Keys(settings.namespace), settings.ingest_idempotency_seconds)
    metrics = metrics or IngestMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            producer.close()

    app = FastAPI(
        title="levers-batcher ingest",
        version=version("levers-batcher"),
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    webhooks = None
    if settings.webhook_secret:
        webhooks = WebhookIntake(
            settings.webhook_secret,
            producer.broker,
            Keys(settings.namespace),
            settings.webhook_dedupe_seconds,
        )
    routers = [
        contacts_router(settings, intake, metrics),
        webhooks_router(webhooks, metrics),
        operations_router(intake, metrics),
        *(
            console_routers(settings, producer, metrics)
            if settings.console_enabled
            else [console_off()]
        ),
    ]
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Route templates that may be metric labels (the routers have no prefix).
    paths = {getattr(route, "path", "") for router in routers for route in router.routes}
    paths |= {getattr(route, "path", "") for route in app.routes} - {""}
    # The last added is the outermost: metrics see every answer, the 413s included.
    app.add_middleware(BodyLimit, max_bytes=settings.ingest_max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics, paths=paths)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            # The request body is documented by hand (one contact or a list); its item schema:
            schema.setdefault("components", {}).setdefault("schemas", {})["Contact"] = (
                contact_schema()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """For `uvicorn --factory`: the app configured from the environment."""
    return create_app(Settings.from_env())
