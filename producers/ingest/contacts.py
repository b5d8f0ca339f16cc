"""POST /v1/contacts: the router that takes contacts over HTTP, behind bearer-token auth.

Order of checks, cheapest and least revealing first: the body limit (middleware, 413), the
token (401/403), the JSON and its types (422, nothing enqueued), then each contact's values
(rejected one by one in the 202), then Redis: the Idempotency-Key (409 for another body) and
the transaction (503 when Redis fails, nothing enqueued).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint's annotations at run
# time, and the Idempotency-Key header's refers to this module's settings, a local name.
import logging
import time
from typing import Annotated, Any

import pydantic_core
import redis
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from producers.ingest.auth import BearerAuth
from producers.ingest.idempotency import Contended, KeyReused, fingerprint
from producers.ingest.intake import BacklogFull, Intake
from producers.ingest.metrics import IngestMetrics
from producers.ingest.models import (
    Answer,
    ContactIn,
    Problem,
    ValidationProblem,
    contacts_adapter,
    request_body,
)
from worker.settings import Settings

log = logging.getLogger("levers.ingest")

PATH = "/v1/contacts"
# Seconds a client should wait before retrying after a 503 (Redis unavailable).
RETRY_AFTER_SECONDS = 1


class Invalid(Exception):
    """The request is malformed: answered 422 in FastAPI's shape, nothing enqueued."""

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        self.issues = issues
        super().__init__(f"{len(issues)} problems")


def issue(loc: list[str | int], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": kind}


def parse_contacts(body: bytes, adapter: TypeAdapter[list[ContactIn]]) -> list[ContactIn]:
    """The body's contacts: one JSON object, or a list of them. Raises `Invalid`."""
    try:
        data = pydantic_core.from_json(body)
    except ValueError as exc:  # also nesting too deep, numbers too long
        raise Invalid([issue(["body"], f"the body is not JSON: {exc}", "json_invalid")]) from None
    try:
        if isinstance(data, dict):
            return [ContactIn.model_validate(data)]
        if isinstance(data, list):
            return adapter.validate_python(data)
    except ValidationError as exc:
        raise Invalid(
            [issue(["body", *e["loc"]], e["msg"], e["type"]) for e in exc.errors()]
        ) from None
    raise Invalid([issue(["body"], "the body must be a contact object or a list", "invalid_body")])


def _key(raw: str | None) -> str | None:
    """The Idempotency-Key. The draft standard's form is a quoted string ("abc"); most clients
    send it bare (abc): the same key. Raises `Invalid` for an empty one."""
    if raw is not None and len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
        if not raw:
            loc: list[str | int] = ["header", "Idempotency-Key"]
            raise Invalid([issue(loc, "the Idempotency-Key is empty", "string_too_short")])
    return raw


def contacts_router(settings: Settings, intake: Intake, metrics: IngestMetrics) -> APIRouter:
    tokens = settings.ingest_token_list
    router = APIRouter(
        tags=["contacts"], dependencies=[Depends(BearerAuth(tokens))] if tokens else []
    )
    adapter = contacts_adapter(settings.ingest_max_contacts)
    responses: dict[int | str, dict[str, Any]] = {
        202: {
            "model": Answer,
            "description": "Each contact's outcome, in order. Accepted contacts are enqueued; "
            "rejected ones are not.",
            "headers": {
                "Idempotent-Replayed": {
                    "description": "`true` when this is the stored answer of an earlier "
                    "request with the same Idempotency-Key (nothing was enqueued again).",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        },
        413: {"model": Problem, "description": "The body is over LEVERS_INGEST_MAX_BODY_BYTES."},
        422: {
            "model": ValidationProblem,
            "description": "Malformed: not JSON, not a contact or a list of them, a field of the "
            "wrong JSON type or unknown, too many contacts, or a malformed Idempotency-Key. "
            "Nothing was enqueued.",
        },
        409: {
            "model": Problem,
            "description": "The Idempotency-Key was used for a different body within the "
            "idempotency window. Nothing was enqueued.",
        },
        503: {
            "model": Problem,
            "description": "Redis is unavailable: nothing was enqueued (unless the connection "
            "broke just after Redis applied the request, which only a retry with the same "
            "Idempotency-Key can tell). Retry after Retry-After seconds with the same key.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    }
    if tokens:
        responses[401] = {
            "model": Problem,
            "description": "No bearer token.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        }
        responses[403] = {"model": Problem, "description": "A bearer token that is not accepted."}

    @router.post(
        PATH,
        status_code=202,
        summary="Enqueue contacts to call",
        description="One contact object, or a list of 1 to "
        f"{settings.ingest_max_contacts}, in Levers' field names. Each contact is validated on "
        "its own: the answer says, in order, which were accepted (with their contact id) and "
        "which were rejected (with a reason). The accepted ones are enqueued all together.",
        responses=responses,
        openapi_extra={"requestBody": request_body(settings.ingest_max_contacts)},
    )
    async def post_contacts(
        request: Request,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=255,
                pattern=r"^[\x21-\x7e]+$",
                description="Any unique string (a UUID): a retry with the same key and body "
                "enqueues nothing again and gets the first answer, for "
                f"{settings.ingest_idempotency_seconds} s.",
            ),
        ] = None,
    ) -> JSONResponse:
        started = time.perf_counter()
        body = await request.body()
        try:
            rows = [contact.fields() for contact in parse_contacts(body, adapter)]
            key = _key(idempotency_key)
        except Invalid as exc:
            return JSONResponse({"detail": exc.issues}, status_code=422)
        try:
            submission = await run_in_threadpool(intake.submit, rows, key, fingerprint(body))
        except KeyReused as exc:
            # 409, not 422: the body is valid; it conflicts with what the key already stands for.
            return JSONResponse({"detail": str(exc)}, status_code=409)
        except BacklogFull as exc:
            log.warning("contacts not enqueued: the backlog is full")
            return JSONResponse(
                {"detail": str(exc)},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        except (redis.RedisError, Contended) as exc:
            log.warning("contacts not enqueued: Redis failed", extra={"error": repr(exc)})
            return JSONResponse(
                {"detail": "Redis is unavailable: retry with the same Idempotency-Key"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        outcomes = submission.outcomes
        if submission.replayed:
            metrics.replays.inc()
        else:
            metrics.count(outcomes)
        log.info(
            "contacts posted",
            extra={
                "accepted": outcomes.accepted,
                "rejected": len(outcomes.rejections),
                "replayed": submission.replayed,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        headers = {"Idempotent-Replayed": "true"} if submission.replayed else None
        return JSONResponse(outcomes.answer(), status_code=202, headers=headers)

    return router
