"""The console's pages (GET): what `Pages` reads, rendered for a logged-in user."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from producers.ingest.console.sessions import Session
from producers.ingest.console.web import Console, number
from worker.contacts import normalise_number
from worker.control import parse_template
from worker.deadletters import REASONS as DEAD_LETTER_REASONS
from worker.errors import ContactError
from worker.holds import HELD_REASONS


def views_router(console: Console) -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)
    pages = console.pages

    @router.get("")
    async def overview(request: Request) -> Response:
        return await console.page(request, "overview.html", lambda s: {"view": pages.overview()})

    @router.get("/templates/{template}")
    async def template_page(request: Request, template: str) -> Response:
        def read(session: Session) -> dict[str, Any]:
            if parse_template(template) is None:
                return {"missing": f"no template {template!r}: a UUID or `default`"}
            actions = console.operations.audit.recent(200)
            recent = [a for a in actions if a.get("target") in (template, "*")]
            return {"view": pages.template(template), "audit": recent[:20]}

        return await console.page(request, "template.html", read)

    @router.get("/dead-letters")
    async def dead_letters(request: Request) -> Response:
        q = request.query_params
        reason, template = q.get("reason", ""), q.get("template", "")

        def read(session: Session) -> dict[str, Any]:
            listing = pages.dead_letters(
                reason=reason, template=template, start=number(q.get("start"))
            )
            return {
                "listing": listing,
                "reason": reason,
                "template": template,
                "reasons": DEAD_LETTER_REASONS,
            }

        return await console.page(request, "dead_letters.html", read)

    @router.get("/dead-letters/{dl_id}")
    async def dead_letter(request: Request, dl_id: str) -> Response:
        def read(session: Session) -> dict[str, Any]:
            record = pages.dead_letter(dl_id)
            if record is None:
                return {"missing": f"no dead letter {dl_id} (replayed, purged or expired?)"}
            shown = console.revealed(request, session, f"dead letter {dl_id}")
            return {"record": record, "reveal": shown}

        return await console.page(request, "dead_letter.html", read)

    @router.get("/holds")
    async def holds(request: Request) -> Response:
        q = request.query_params
        reason, key = q.get("reason", ""), q.get("batch_key", "")

        def read(session: Session) -> dict[str, Any]:
            return {
                "listing": pages.held(reason=reason, key=key, start=number(q.get("start"))),
                "reason": reason,
                "batch_key": key,
                "reasons": HELD_REASONS,
                "counts": pages.holds.counts(),
            }

        return await console.page(request, "holds.html", read)

    @router.get("/suppression")
    async def suppression(request: Request) -> Response:
        q = request.query_params

        def read(session: Session) -> dict[str, Any]:
            wanted = q.get("number", "").strip()
            found, problem, e164 = None, None, ""
            if wanted:
                try:
                    e164 = normalise_number(wanted, console.settings.default_region)
                    found = pages.suppression.lookup(e164)
                except ContactError as exc:
                    problem = str(exc)
            entries, cursor, total = pages.suppressed(number(q.get("cursor")))
            return {
                "entries": entries,
                "cursor": cursor,
                "total": total,
                "wanted": wanted,
                "number": e164,
                "found": found,
                "problem": problem,
            }

        return await console.page(request, "suppression.html", read)

    @router.get("/contacts/{contact_id}")
    async def contact(request: Request, contact_id: str) -> Response:
        def read(session: Session) -> dict[str, Any]:
            record = pages.contact(contact_id)
            if record is None:
                return {
                    "missing": f"no outcome is recorded for contact {contact_id}: not called "
                    "yet (see holds and dead letters), or its record has expired"
                }
            shown = bool(record.get("numberTo")) and console.revealed(
                request, session, f"contact {contact_id}"
            )
            return {"contact_id": contact_id, "record": record, "reveal": shown}

        return await console.page(request, "contact.html", read)

    @router.get("/batches/{batch_id}")
    async def batch(request: Request, batch_id: str) -> Response:
        def read(session: Session) -> dict[str, Any]:
            found = pages.batch(batch_id)
            if found is None:
                return {"missing": f"no batch {batch_id} (never cut here, or expired)"}
            return {"batch": found}

        return await console.page(request, "batch.html", read)

    @router.get("/find")
    async def find(request: Request) -> Response:
        wanted = request.query_params.get("id", "").strip()
        if ":" in wanted:  # contact ids are "<message id>:<position>"
            return RedirectResponse(f"/console/contacts/{quote(wanted)}", status_code=303)
        return RedirectResponse(f"/console/batches/{quote(wanted)}", status_code=303)

    return router
