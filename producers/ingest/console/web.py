"""What every console route shares: the parts it reads and acts through, the login a request
carries, rendering a page, and running an action safely.

Every page needs a login (else a redirect to /console/login); every action needs the login,
the session's CSRF token and a form from this site (else 401 or 403, and nothing is done) and
a note, and leaves an audit line with the user's name. Actions answer with a redirect back to
their page, which shows their result once (POST/redirect/GET: a reload repeats nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import redis
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from producers.ingest.console.pages import Pages, local_times, masked
from producers.ingest.console.sessions import COOKIE, Session, Sessions
from producers.ingest.metrics import IngestMetrics
from worker.admin.status import utc
from worker.broker import build_broker
from worker.control import Control
from worker.operations import Operations
from worker.runtime import buffer_config
from worker.settings import Settings

HERE = Path(__file__).parent
MAX_NOTE = 500
MAX_IDS = 200  # ids one action takes (a page shows 50)
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
}


class Refused(Exception):
    """An action refused before doing anything: (HTTP status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Console:
    def __init__(self, settings: Settings, client: redis.Redis, metrics: IngestMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.pages = Pages(settings, client)
        keys = self.pages.keys
        self.sessions = Sessions(
            client, keys, settings.console_session_seconds, settings.console_reveal_list
        )
        self.operations = Operations(client, keys)
        self.control = Control(
            client,
            keys,
            buffer_config(settings),
            build_broker(settings, client=client),
            batch_retention_seconds=settings.batch_retention_seconds,
        )
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.filters["masked"] = masked
        self.templates.env.filters["utc"] = lambda seconds: utc(seconds) or "-"
        self.templates.env.globals["local_times"] = local_times

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def render(
        self,
        request: Request,
        name: str,
        session: Session | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A page; a logged-in one shows the result of the session's last action once."""
        cookie = request.cookies.get(COOKIE)
        flash = self.sessions.take_flash(cookie) if session is not None and cookie else None
        return self.templates.TemplateResponse(
            request,
            name,
            {"session": session, "flash": flash, **context},
            status_code=status,
            headers=HEADERS,
        )

    def revealed(self, request: Request, session: Session, what: str) -> bool:
        """Whether a page shows whole numbers: asked for (?reveal=1) by a user who may; each
        time is recorded in the audit."""
        if request.query_params.get("reveal") != "1" or not session.may_reveal:
            return False
        self.operations.reveal(who(session), what)
        return True

    async def page(
        self, request: Request, name: str, read: Callable[[Session], dict[str, Any]]
    ) -> Response:
        """A page for a logged-in user, its context read by `read` (in the thread pool)."""
        try:
            session = await run_in_threadpool(self.session_of, request)
            if session is None:
                query = f"?{request.url.query}" if request.url.query else ""
                target = quote(request.url.path + query)
                return RedirectResponse(f"/console/login?next={target}", status_code=303)
            context = await run_in_threadpool(read, session)
            if context.get("missing"):
                return self.render(request, "missing.html", session, 404, **context)
            return self.render(request, name, session, **context)
        except redis.RedisError:
            return unavailable()

    async def act(
        self,
        request: Request,
        action: str,
        back: str,
        work: Callable[[Session, FormData], str],
    ) -> Response:
        """Run `work` (in the thread pool) for a logged-in user's form with its CSRF token;
        redirect to `back`, where its message is shown once."""
        form = await request.form()
        session: Session | None = None
        try:
            session = await run_in_threadpool(self.session_of, request)
            if cross_site(request):
                raise Refused(403, "this form was posted from another site")
            if session is None:
                raise Refused(401, "log in first: this action needs a console login")
            csrf = form.get("csrf")
            if not session.csrf_ok(csrf if isinstance(csrf, str) else None):
                raise Refused(403, "the form's CSRF token is missing or wrong: reload the page")
            message = await run_in_threadpool(work, session, form)
            await run_in_threadpool(self.sessions.flash, request.cookies[COOKIE], message)
        except redis.RedisError:
            self.metrics.console_actions.labels(action, "refused").inc()
            return unavailable()
        except Refused as exc:
            self.metrics.console_actions.labels(action, "refused").inc()
            return self.render(
                request, "refused.html", session, exc.status, message=str(exc), back=back
            )
        self.metrics.console_actions.labels(action, "done").inc()
        return RedirectResponse(back, status_code=303)


def unavailable() -> Response:
    """Redis did not answer: say so (an action may or may not have been done: look again)."""
    return Response(
        "Redis does not answer: the console cannot read or act now. Try again in a moment; "
        "an action sent just now may have been done, so look before repeating it.\n",
        status_code=503,
        media_type="text/plain",
        headers={"Retry-After": "5", "Cache-Control": "no-store"},
    )


def who(session: Session) -> str:
    """The audit's name of a console user."""
    return f"{session.user} (console)"


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def note(form: FormData) -> str:
    given = " ".join(text(form, "note").split())
    if not given:
        raise Refused(422, "a note is required: say why (it is kept in the audit)")
    if len(given) > MAX_NOTE:
        raise Refused(422, f"the note is longer than {MAX_NOTE} characters")
    return given


def ids(form: FormData) -> list[str]:
    chosen = [v for v in form.getlist("id") if isinstance(v, str) and v]
    if not chosen:
        raise Refused(422, "choose at least one")
    if len(chosen) > MAX_IDS:
        raise Refused(422, f"at most {MAX_IDS} at a time")
    return chosen


def number(value: str | None) -> int:
    """A non-negative integer from a query or form field (0 when it is not one)."""
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def cross_site(request: Request) -> bool:
    """A form posted from a page of another origin (the browser's Origin header names it):
    refused on top of the CSRF token and SameSite cookie. A proxy in front must pass the Host
    header through (as it must for the cookie's path and the redirects anyway)."""
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not sent by every client; the token still guards
    host = request.headers.get("host", "")
    return origin == "null" or urlsplit(origin).netloc.lower() != host.lower()


def console_path(value: str | None) -> str:
    """Where to go after a login or an action: a console path only (never another site)."""
    if value and value.startswith("/console") and not value.startswith("//"):
        return value
    return "/console"


def back(request: Request, default: str) -> str:
    """The page an action came from (its `back` query), a console path only."""
    return console_path(request.query_params.get("back") or default)
