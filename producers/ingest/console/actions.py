"""The console's actions (POST), each through the code `levers-admin` uses, audited.

`Console.act` checks the login, the CSRF token and the form's origin before any of them runs.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from producers.api import Producer
from producers.ingest.console.pages import masked
from producers.ingest.console.sessions import Session
from producers.ingest.console.web import Console, Refused, back, ids, note, number, text, who
from worker.contacts import instant, normalise_number, time_zone_problem
from worker.control import parse_template
from worker.errors import ContactError


def actions_router(console: Console, producer: Producer) -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)
    pages, operations, control = console.pages, console.operations, console.control

    @router.post("/templates/{template}/{action}")
    async def template_action(request: Request, template: str, action: str) -> Response:
        def work(session: Session, form: FormData) -> str:
            if action not in ("pause", "resume", "cancel"):
                raise Refused(404, f"no action {action!r}: pause, resume or cancel")
            which = parse_template(template)
            if which is None:
                raise Refused(422, "the template is a UUID or `default`")
            why, by = note(form), who(session)
            if action == "pause":
                fresh = control.pause(which, note=why, who=by)
                return f"paused {which}" + ("" if fresh else " (it was paused already)")
            if action == "resume":
                tokens = control.resume(which, note=why, who=by)
                return f"resumed {which}: {tokens} waiting batches handed a send token"
            done = control.cancel(which, note=why, who=by)
            return (
                f"cancelled {which}: {done.contacts} contacts dead-lettered (replayable), "
                f"{done.messages} queued messages marked"
            )

        page = f"/console/templates/{quote(template)}"
        return await console.act(request, f"template {action}", page, work)

    @router.post("/dead-letters/{action}")
    async def dead_letters_action(request: Request, action: str) -> Response:
        def work(session: Session, form: FormData) -> str:
            if action not in ("replay", "purge"):
                raise Refused(404, f"no action {action!r}: replay or purge")
            why = note(form)
            records = pages.dead.get(ids(form))
            if not records:
                raise Refused(404, "none of these dead letters is held any more")
            chosen = [r["id"] for r in records]
            target = ",".join(chosen)
            if action == "purge":
                removed = operations.purge_dead_letters(
                    who(session), chosen, note=why, target=target
                )
                return f"purged {removed} dead letters"
            result = operations.replay_dead_letters(
                who(session), records, producer.enqueue_contacts, note=why, target=target
            )
            kept = "; ".join(f"kept {i}: {reason}" for i, reason in result.refused)
            return f"replayed {len(result.replayed)} dead letters" + (f"; {kept}" if kept else "")

        page = back(request, "/console/dead-letters")
        return await console.act(request, f"dead-letters {action}", page, work)

    @router.post("/holds/{action}")
    async def holds_action(request: Request, action: str) -> Response:
        def work(session: Session, form: FormData) -> str:
            if action not in ("release", "expire"):
                raise Refused(404, f"no action {action!r}: release or expire")
            why = note(form)
            zone = text(form, "time_zone").strip() or None
            if zone and (problem := time_zone_problem(zone)):
                raise Refused(422, problem)
            # Each is "<held since ms>|<contact id>", as the holds page lists them.
            refs = [ref.partition("|") for ref in ids(form)]
            chosen = pages.holds.find_many([(number(since), cid) for since, _, cid in refs])
            if not chosen:
                raise Refused(404, "none of these contacts is held any more")
            done = operations.act_on_holds(
                who(session),
                pages.holds,
                chosen,
                "release" if action == "release" else "expire",
                note=why,
                target=",".join(h.contact_id for h in chosen),
                time_zone=zone,
            )
            verb = "released" if action == "release" else "expired"
            return f"{verb} {done} held contacts"

        page = back(request, "/console/holds")
        return await console.act(request, f"holds {action}", page, work)

    @router.post("/suppression/{action}")
    async def suppression_action(request: Request, action: str) -> Response:
        def work(session: Session, form: FormData) -> str:
            if action not in ("add", "remove"):
                raise Refused(404, f"no action {action!r}: add or remove")
            why = note(form)
            try:
                e164 = normalise_number(text(form, "number"), console.settings.default_region)
                expire_at = instant(text(form, "expire_at").strip() or None, "expire_at")
            except ContactError as exc:
                raise Refused(422, str(exc)) from None
            if action == "add":
                operations.suppress(who(session), [e164], note=why, expire_at=expire_at)
                return f"{masked(e164)} is on the do-not-call list"
            removed = operations.unsuppress(who(session), [e164], note=why)
            return (
                f"{masked(e164)} removed from the do-not-call list"
                if removed
                else f"{masked(e164)} was not on the do-not-call list"
            )

        return await console.act(request, f"suppress {action}", "/console/suppression", work)

    return router
