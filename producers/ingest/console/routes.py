"""The console's routes: pages (GET) and actions (POST), server-rendered with Jinja2.

Every page needs a login (else a redirect to /console/login); every action needs the login
and the session's CSRF token (else 401 or 403, and nothing is done) and a note, and leaves an
audit line with the user's name. Actions answer with a redirect back to their page, which
shows their result once (POST/redirect/GET: a reload repeats nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import redis
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from producers.api import Producer
from producers.ingest.auth import Tokens
from producers.ingest.console.pages import Pages, local_times, masked
from producers.ingest.console.sessions import COOKIE, Session, Sessions
from producers.ingest.metrics import IngestMetrics
from worker.admin.status import utc
from worker.broker import build_broker
from worker.contacts import instant, normalise_number, time_zone_problem
from worker.control import Control, parse_template
from worker.deadletters import REASONS as DEAD_LETTER_REASONS
from worker.errors import ContactError
from worker.holds import HELD_REASONS
from worker.operations import Operations
from worker.passwords import Users
from worker.runtime import buffer_config
from worker.settings import Settings

HERE = Path(__file__).parent
MAX_NOTE = 500
MAX_IDS = 200  # ids one action takes (a page shows 50)
# Password checks at once: each takes ~0.1 s of a core and 32 MiB (scrypt), so a flood of
# logins queues here instead of taking every thread and the memory.
LOGIN_CHECKS = 2


class Refused(Exception):
    """An action refused before doing anything: (HTTP status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def console_router(settings: Settings, producer: Producer, metrics: IngestMetrics) -> APIRouter:
    users = Users.parse(settings.console_users or "")
    tokens = Tokens(settings.console_token_list)
    client = producer.broker.client
    pages = Pages(settings, client)
    sessions = Sessions(
        client,
        pages.keys,
        settings.console_session_seconds,
        settings.console_reveal_list,
    )
    operations = Operations(client, pages.keys)
    control = Control(
        client,
        pages.keys,
        buffer_config(settings),
        build_broker(settings, client=client),
        batch_retention_seconds=settings.batch_retention_seconds,
    )
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["masked"] = masked
    templates.env.globals["local_times"] = local_times
    templates.env.filters["utc"] = _utc
    css = (HERE / "static" / "console.css").read_text(encoding="utf-8")
    checks = threading.BoundedSemaphore(LOGIN_CHECKS)

    def check(name: str, password: str) -> bool:
        with checks:
            return users.check(name, password)

    router = APIRouter(prefix="/console", include_in_schema=False)

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def render(
        request: Request, name: str, session: Session | None, status: int = 200, **context: Any
    ) -> HTMLResponse:
        cookie = request.cookies.get(COOKIE)
        flash = sessions.take_flash(cookie) if session is not None and cookie else None
        response = templates.TemplateResponse(
            request,
            name,
            {"session": session, "flash": flash, "now": pages.now(), **context},
            status_code=status,
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self'; script-src 'none'; form-action 'self'; "
            "frame-ancestors 'none'"
        )
        return response

    def revealed(request: Request, session: Session, what: str) -> bool:
        """Whether a page shows whole numbers: asked for (?reveal=1) by a user who may; each
        time is recorded in the audit."""
        if request.query_params.get("reveal") != "1" or not session.may_reveal:
            return False
        operations.reveal(_who(session), what)
        return True

    async def page(
        request: Request, name: str, read: Callable[[Session], dict[str, Any]]
    ) -> Response:
        try:
            session = await run_in_threadpool(session_of, request)
            if session is None:
                query = f"?{request.url.query}" if request.url.query else ""
                target = quote(request.url.path + query)
                return RedirectResponse(f"/console/login?next={target}", status_code=303)
            context = await run_in_threadpool(read, session)
            if context.get("missing"):
                return render(request, "missing.html", session, 404, **context)
            return render(request, name, session, **context)
        except redis.RedisError:
            return _unavailable()

    async def act(
        request: Request,
        action: str,
        back: str,
        work: Callable[[Session, FormData], str],
    ) -> Response:
        form = await request.form()
        try:
            session = await run_in_threadpool(session_of, request)
        except redis.RedisError:
            return _unavailable()
        try:
            if _cross_site(request):
                raise Refused(403, "this form was posted from another site")
            if session is None:
                raise Refused(401, "log in first: this action needs a console login")
            csrf = form.get("csrf")
            if not session.csrf_ok(csrf if isinstance(csrf, str) else None):
                raise Refused(403, "the form's CSRF token is missing or wrong: reload the page")
            message = await run_in_threadpool(work, session, form)
        except redis.RedisError:
            metrics.console_actions.labels(action, "refused").inc()
            return _unavailable()
        except Refused as exc:
            metrics.console_actions.labels(action, "refused").inc()
            return render(request, "refused.html", session, exc.status, message=str(exc), back=back)
        metrics.console_actions.labels(action, "done").inc()
        cookie = request.cookies.get(COOKIE) or ""
        await run_in_threadpool(sessions.flash, cookie, message)
        return RedirectResponse(back, status_code=303)

    # -- login -------------------------------------------------------------------------------

    def login_form(request: Request, status: int, target: str, error: str = "") -> Response:
        return render(
            request,
            "login.html",
            None,
            status,
            next=target,
            error=error,
            with_password=bool(users.hashes),
            with_token=bool(settings.console_token_list),
        )

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        return login_form(request, 200, _next(request.query_params.get("next")))

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = _text(form, "user"), _text(form, "password")
        token = _text(form, "token")
        target = _next(_text(form, "next"))
        if _cross_site(request):
            metrics.console_logins.labels("refused").inc()
            return login_form(request, 403, target, "posted from another site")
        if token:
            place = tokens.match(token)
            name = "" if place is None else f"token#{place + 1}"
            ok = place is not None
        else:
            ok = await run_in_threadpool(check, name, password)
        metrics.console_logins.labels("ok" if ok else "refused").inc()
        if not ok:
            wrong = "this token is not accepted" if token else "wrong name or password"
            return login_form(request, 401, target, wrong)
        try:
            cookie = await run_in_threadpool(sessions.start, name)
        except redis.RedisError:
            return _unavailable()
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=settings.console_session_seconds,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        def work(session: Session, form: FormData) -> str:
            sessions.end(request.cookies.get(COOKIE))
            return "logged out"

        response = await act(request, "logout", "/console/login", work)
        if response.status_code == 303:
            response.delete_cookie(COOKIE, path="/console")
        return response

    @router.get("/static/console.css")
    async def stylesheet() -> Response:
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    # -- pages -------------------------------------------------------------------------------

    @router.get("")
    async def overview(request: Request) -> Response:
        return await page(request, "overview.html", lambda s: {"view": pages.overview()})

    @router.get("/templates/{template}")
    async def template_page(request: Request, template: str) -> Response:
        def read(session: Session) -> dict[str, Any]:
            if parse_template(template) is None:
                return {"missing": f"no template {template!r}: a UUID or `default`"}
            recent = [a for a in operations.audit.recent(200) if a.get("target") in (template, "*")]
            return {"view": pages.template(template), "audit": recent[:20]}

        return await page(request, "template.html", read)

    @router.get("/dead-letters")
    async def dead_letters(request: Request) -> Response:
        q = request.query_params
        reason, template = q.get("reason", ""), q.get("template", "")

        def read(session: Session) -> dict[str, Any]:
            listing = pages.dead_letters(
                reason=reason, template=template, start=_int(q.get("start"))
            )
            return {
                "listing": listing,
                "reason": reason,
                "template": template,
                "reasons": DEAD_LETTER_REASONS,
            }

        return await page(request, "dead_letters.html", read)

    @router.get("/dead-letters/{dl_id}")
    async def dead_letter(request: Request, dl_id: str) -> Response:
        def read(session: Session) -> dict[str, Any]:
            record = pages.dead_letter(dl_id)
            if record is None:
                return {"missing": f"no dead letter {dl_id} (replayed, purged or expired?)"}
            shown = revealed(request, session, f"dead letter {dl_id}")
            return {"record": record, "reveal": shown}

        return await page(request, "dead_letter.html", read)

    @router.get("/holds")
    async def holds(request: Request) -> Response:
        q = request.query_params
        reason, key = q.get("reason", ""), q.get("batch_key", "")

        def read(session: Session) -> dict[str, Any]:
            listing = pages.held(reason=reason, key=key, start=_int(q.get("start")))
            counts = pages.holds.counts()
            return {
                "listing": listing,
                "reason": reason,
                "batch_key": key,
                "reasons": HELD_REASONS,
                "counts": counts,
            }

        return await page(request, "holds.html", read)

    @router.get("/suppression")
    async def suppression(request: Request) -> Response:
        q = request.query_params

        def read(session: Session) -> dict[str, Any]:
            wanted = q.get("number", "").strip()
            found, problem, number = None, None, ""
            if wanted:
                try:
                    number = normalise_number(wanted, settings.default_region)
                    found = pages.suppression.lookup(number)
                except ContactError as exc:
                    problem = str(exc)
            entries, cursor, total = pages.suppressed(_int(q.get("cursor")))
            return {
                "entries": entries,
                "cursor": cursor,
                "total": total,
                "wanted": wanted,
                "number": number,
                "found": found,
                "problem": problem,
            }

        return await page(request, "suppression.html", read)

    @router.get("/contacts/{contact_id}")
    async def contact(request: Request, contact_id: str) -> Response:
        def read(session: Session) -> dict[str, Any]:
            record = pages.contact(contact_id)
            if record is None:
                return {
                    "missing": f"no outcome is recorded for contact {contact_id}: not called "
                    "yet (see holds and dead letters), or its record has expired"
                }
            shown = bool(record.get("numberTo")) and revealed(
                request, session, f"contact {contact_id}"
            )
            return {"contact_id": contact_id, "record": record, "reveal": shown}

        return await page(request, "contact.html", read)

    @router.get("/batches/{batch_id}")
    async def batch(request: Request, batch_id: str) -> Response:
        def read(session: Session) -> dict[str, Any]:
            found = pages.batch(batch_id)
            if found is None:
                return {"missing": f"no batch {batch_id} (never cut here, or expired)"}
            return {"batch": found}

        return await page(request, "batch.html", read)

    @router.get("/find")
    async def find(request: Request) -> Response:
        wanted = request.query_params.get("id", "").strip()
        if ":" in wanted:  # contact ids are "<message id>:<position>"
            return RedirectResponse(f"/console/contacts/{quote(wanted)}", status_code=303)
        return RedirectResponse(f"/console/batches/{quote(wanted)}", status_code=303)

    # -- actions -----------------------------------------------------------------------------

    @router.post("/templates/{template}/{action}")
    async def template_action(request: Request, template: str, action: str) -> Response:
        back = f"/console/templates/{quote(template)}"

        def work(session: Session, form: FormData) -> str:
            if action not in ("pause", "resume", "cancel"):
                raise Refused(404, f"no action {action!r}: pause, resume or cancel")
            which = parse_template(template)
            if which is None:
                raise Refused(422, "the template is a UUID or `default`")
            note, who = _note(form), _who(session)
            if action == "pause":
                fresh = control.pause(which, note=note, who=who)
                return f"paused {which}" + ("" if fresh else " (it was paused already)")
            if action == "resume":
                tokens = control.resume(which, note=note, who=who)
                return f"resumed {which}: {tokens} waiting batches handed a send token"
            done = control.cancel(which, note=note, who=who)
            return (
                f"cancelled {which}: {done.contacts} contacts dead-lettered (replayable), "
                f"{done.messages} queued messages marked"
            )

        return await act(request, f"template {action}", back, work)

    @router.post("/dead-letters/{action}")
    async def dead_letters_action(request: Request, action: str) -> Response:
        def work(session: Session, form: FormData) -> str:
            if action not in ("replay", "purge"):
                raise Refused(404, f"no action {action!r}: replay or purge")
            note = _note(form)
            ids = _ids(form)
            records = pages.dead.get(ids)
            if not records:
                raise Refused(404, "none of these dead letters is held any more")
            target = ",".join(r["id"] for r in records)
            if action == "purge":
                removed = operations.purge_dead_letters(
                    _who(session), [r["id"] for r in records], note=note, target=target
                )
                return f"purged {removed} dead letters"
            result = operations.replay_dead_letters(
                _who(session), records, producer.enqueue_contacts, note=note, target=target
            )
            kept = "; ".join(f"kept {i}: {why}" for i, why in result.refused)
            return f"replayed {len(result.replayed)} dead letters" + (f"; {kept}" if kept else "")

        back = _back(request, "/console/dead-letters")
        return await act(request, f"dead-letters {action}", back, work)

    @router.post("/holds/{action}")
    async def holds_action(request: Request, action: str) -> Response:
        def work(session: Session, form: FormData) -> str:
            if action not in ("release", "expire"):
                raise Refused(404, f"no action {action!r}: release or expire")
            note = _note(form)
            zone = _text(form, "time_zone").strip() or None
            if zone and (problem := time_zone_problem(zone)):
                raise Refused(422, problem)
            refs = [ref.partition("|") for ref in _ids(form)]
            chosen = pages.holds.find_many([(_int(since), cid) for since, _, cid in refs])
            if not chosen:
                raise Refused(404, "none of these contacts is held any more")
            target = ",".join(h.contact_id for h in chosen)
            done = operations.act_on_holds(
                _who(session),
                pages.holds,
                chosen,
                "release" if action == "release" else "expire",
                note=note,
                target=target,
                time_zone=zone,
            )
            verb = "released" if action == "release" else "expired"
            return f"{verb} {done} held contacts"

        back = _back(request, "/console/holds")
        return await act(request, f"holds {action}", back, work)

    @router.post("/suppression/{action}")
    async def suppression_action(request: Request, action: str) -> Response:
        def work(session: Session, form: FormData) -> str:
            if action not in ("add", "remove"):
                raise Refused(404, f"no action {action!r}: add or remove")
            note = _note(form)
            try:
                number = normalise_number(_text(form, "number"), settings.default_region)
                expire_at = instant(_text(form, "expire_at").strip() or None, "expire_at")
            except ContactError as exc:
                raise Refused(422, str(exc)) from None
            if action == "add":
                operations.suppress(_who(session), [number], note=note, expire_at=expire_at)
                return f"{masked(number)} is on the do-not-call list"
            removed = operations.unsuppress(_who(session), [number], note=note)
            return (
                f"{masked(number)} removed from the do-not-call list"
                if removed
                else f"{masked(number)} was not on the do-not-call list"
            )

        return await act(request, f"suppress {action}", "/console/suppression", work)

    return router


def console_off() -> APIRouter:
    """Without LEVERS_CONSOLE_USERS or LEVERS_CONSOLE_TOKENS: /console says how to turn it on,
    and serves nothing."""
    router = APIRouter(include_in_schema=False)

    @router.api_route("/console{rest:path}", methods=["GET", "POST"])
    async def off(rest: str) -> Response:
        return Response(
            "The console is off: set LEVERS_CONSOLE_USERS or LEVERS_CONSOLE_TOKENS "
            "(see docs/console.md).\n",
            status_code=404,
            media_type="text/plain",
        )

    return router


def _unavailable() -> Response:
    """Redis did not answer: say so (an action may or may not have been done: look again)."""
    return Response(
        "Redis does not answer: the console cannot read or act now. Try again in a moment; "
        "an action sent just now may have been done, so look before repeating it.\n",
        status_code=503,
        media_type="text/plain",
        headers={"Retry-After": "5", "Cache-Control": "no-store"},
    )


def _who(session: Session) -> str:
    return f"{session.user} (console)"


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _note(form: FormData) -> str:
    note = " ".join(_text(form, "note").split())
    if not note:
        raise Refused(422, "a note is required: say why (it is kept in the audit)")
    if len(note) > MAX_NOTE:
        raise Refused(422, f"the note is longer than {MAX_NOTE} characters")
    return note


def _ids(form: FormData) -> list[str]:
    ids = [v for v in form.getlist("id") if isinstance(v, str) and v]
    if not ids:
        raise Refused(422, "choose at least one")
    if len(ids) > MAX_IDS:
        raise Refused(422, f"at most {MAX_IDS} at a time")
    return ids


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _cross_site(request: Request) -> bool:
    """A form posted from a page of another origin (the browser's Origin header names it):
    refused on top of the CSRF token and SameSite cookie. A proxy in front must pass the Host
    header through (as it must for the cookie's path and the redirects anyway)."""
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not sent by every client; the token still guards
    host = request.headers.get("host", "")
    return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()


def _next(value: str | None) -> str:
    """Where to go after a login: a console path only (never another site)."""
    if value and value.startswith("/console") and not value.startswith("//"):
        return value
    return "/console"


def _back(request: Request, default: str) -> str:
    """The page an action came from (its `back` query), a console path only."""
    return _next(request.query_params.get("back") or default)


def _utc(seconds: float | None) -> str:
    return utc(seconds) or "-"
