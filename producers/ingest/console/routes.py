"""The console at /console: logins and logouts here, its pages in `views`, its actions in
`actions`, what they share in `web`. Server-rendered with Jinja2; no JavaScript.

A login is a name and password (LEVERS_CONSOLE_USERS, scrypt hashes) or a console token
(LEVERS_CONSOLE_TOKENS); either starts a session (`sessions`). Without either setting the
console is off and says how to turn it on.
"""

from __future__ import annotations

import threading

import redis
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from producers.api import Producer
from producers.ingest.auth import Tokens
from producers.ingest.console.actions import actions_router
from producers.ingest.console.sessions import COOKIE, Session
from producers.ingest.console.views import views_router
from producers.ingest.console.web import HERE, Console, console_path, cross_site, text, unavailable
from producers.ingest.metrics import IngestMetrics
from worker.passwords import Users
from worker.settings import Settings

# Password checks at once: each takes ~0.1 s of a core and 32 MiB (scrypt), so a flood of
# logins queues here instead of taking every thread and the memory.
LOGIN_CHECKS = 2


def console_routers(
    settings: Settings, producer: Producer, metrics: IngestMetrics
) -> list[APIRouter]:
    """The console's routers: logins (here), pages and actions. Flat routers, added to the app
    side by side, so that each route's template is a metric label."""
    console = Console(settings, producer.broker.client, metrics)
    users = Users.parse(settings.console_users or "")
    tokens = Tokens(settings.console_token_list)
    checks = threading.BoundedSemaphore(LOGIN_CHECKS)
    css = (HERE / "static" / "console.css").read_text(encoding="utf-8")
    router = APIRouter(include_in_schema=False)

    def check(name: str, password: str) -> bool:
        with checks:
            return users.check(name, password)

    def login_form(request: Request, status: int, target: str, error: str = "") -> Response:
        return console.render(
            request,
            "login.html",
            None,
            status,
            next=target,
            error=error,
            with_password=bool(users.hashes),
            with_token=bool(settings.console_token_list),
        )

    @router.get("/console/login")
    async def login_page(request: Request) -> Response:
        return login_form(request, 200, console_path(request.query_params.get("next")))

    @router.post("/console/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password, token = text(form, "user"), text(form, "password"), text(form, "token")
        target = console_path(text(form, "next"))
        if cross_site(request):
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
            cookie = await run_in_threadpool(console.sessions.start, name)
        except redis.RedisError:
            return unavailable()
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

    @router.post("/console/logout")
    async def logout(request: Request) -> Response:
        def work(session: Session, form: FormData) -> str:
            console.sessions.end(request.cookies.get(COOKIE))
            return "logged out"

        response = await console.act(request, "logout", "/console/login", work)
        if response.status_code == 303:
            response.delete_cookie(COOKIE, path="/console")
        return response

    @router.get("/console/static/console.css")
    async def stylesheet() -> Response:
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    return [router, views_router(console), actions_router(console, producer)]


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
