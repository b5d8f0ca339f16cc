"""The console over HTTP, against a real ingest and Redis: who may see it, who may act, what
an action leaves behind (its audit line, in the page and in `levers-admin status`), and that
numbers stay masked."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis

from tests.commands import run
from tests.console import (
    CONSOLE_TOKEN,
    OTHER_PASSWORD,
    TEMPLATE,
    Console,
    console_env,
    seed,
)
from tests.integration.ingest.conftest import IngestServer
from tests.servers import free_port
from worker.audit import Audit
from worker.control import Control
from worker.deadletters import DeadLetters
from worker.holds import Holds
from worker.keys import Keys
from worker.runtime import buffer_config
from worker.settings import Settings

pytestmark = pytest.mark.integration

PAGES = (
    "/console",
    f"/console/templates/{TEMPLATE}",
    "/console/dead-letters",
    "/console/holds",
    "/console/suppression",
    "/console/contacts/a:1",
    "/console/batches/b1",
)


@pytest.fixture
def served(
    serve: Callable[[dict[str, str]], IngestServer], ingest_env: dict[str, str]
) -> IngestServer:
    return serve(console_env(ingest_env))


@pytest.fixture
def console(served: IngestServer) -> Iterator[Console]:
    operator = Console(served.url)
    assert operator.login().status_code == 303
    yield operator
    operator.close()


@pytest.fixture
def keys(ingest_env: dict[str, str]) -> Keys:
    return Keys(ingest_env["LEVERS_NAMESPACE"])


def test_the_console_is_off_without_users(
    serve: Callable[[dict[str, str]], IngestServer], ingest_env: dict[str, str]
) -> None:
    server = serve(ingest_env)
    with httpx.Client(base_url=server.url) as http:
        for path in ("/console", "/console/login", "/console/holds"):
            answer = http.get(path)
            assert answer.status_code == 404 and "LEVERS_CONSOLE_TOKENS" in answer.text
        assert http.post("/console/login", data={"user": "a", "password": "b"}).status_code == 404


def test_every_page_needs_a_login(served: IngestServer) -> None:
    with httpx.Client(base_url=served.url) as http:
        for path in PAGES:
            answer = http.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/console/login?next=/console"), path
        # Ingest tokens open nothing here.
        headers = {"Authorization": "Bearer it-ingest-token-0123456789"}
        assert http.get("/console", headers=headers).status_code == 303
        login = http.get("/console/login")
        assert login.status_code == 200 and 'name="password"' in login.text


def test_a_wrong_password_is_refused_and_counted(served: IngestServer) -> None:
    operator = Console(served.url)
    try:
        assert operator.login("alice", "not-the-password").status_code == 401
        assert operator.login("mallory", "whatever-it-is").status_code == 401
        assert operator.http.get("/console").status_code == 303
        good = operator.login()
        assert good.status_code == 303 and good.headers["location"] == "/console"
        cookie = good.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
        assert operator.http.get("/console").status_code == 200
    finally:
        operator.close()
    metrics = httpx.get(served.url + "/metrics").text
    assert 'levers_console_logins_total{result="refused"} 2.0' in metrics
    assert 'levers_console_logins_total{result="ok"} 1.0' in metrics


def test_a_console_token_logs_in_as_its_place_in_the_list(
    served: IngestServer,
    serve: Callable[[dict[str, str]], IngestServer],
    ingest_env: dict[str, str],
    redis_client: redis.Redis,
    keys: Keys,
) -> None:
    operator = Console(served.url)
    try:
        wrong = operator.http.post("/console/login", data={"token": "not-a-console-token-x"})
        assert wrong.status_code == 401 and "this token is not accepted" in wrong.text
        # An ingest token is not a console token.
        ingest = operator.http.post(
            "/console/login", data={"token": ingest_env["LEVERS_INGEST_TOKENS"].split(",")[0]}
        )
        assert ingest.status_code == 401
        assert (
            operator.http.post("/console/login", data={"token": CONSOLE_TOKEN}).status_code == 303
        )
        assert "token#2" in operator.page("/console")
        done = operator.act(f"/console/templates/{TEMPLATE}/pause", note="night shift")
        assert done.status_code == 303
    finally:
        operator.close()
    assert Audit(redis_client, keys).recent(1)[0]["who"] == "token#2 (console)"
    # Tokens alone turn the console on; the login page then asks for a token only.
    only_tokens = {**ingest_env, "LEVERS_CONSOLE_TOKENS": CONSOLE_TOKEN}
    server = serve(only_tokens)
    page = httpx.get(server.url + "/console/login").text
    assert 'name="token"' in page and 'name="password"' not in page


def test_a_login_goes_back_to_a_console_page_only(served: IngestServer) -> None:
    operator = Console(served.url)
    try:
        for wanted, landed in (
            ("/console/holds", "/console/holds"),
            ("https://evil.example/", "/console"),
            ("//evil.example/console", "/console"),
        ):
            answer = operator.http.post(
                "/console/login",
                data={"user": "alice", "password": "console-test-password-1", "next": wanted},
            )
            assert answer.headers["location"] == landed
    finally:
        operator.close()


def test_actions_without_a_login_or_its_csrf_token_change_nothing(
    served: IngestServer, console: Console, redis_client: redis.Redis, keys: Keys
) -> None:
    path = f"/console/templates/{TEMPLATE}/pause"
    with httpx.Client(base_url=served.url) as stranger:
        assert stranger.post(path, data={"note": "x", "csrf": console.csrf()}).status_code == 401
    assert console.http.post(path, data={"note": "no token"}).status_code == 403
    assert console.http.post(path, data={"note": "forged", "csrf": "guess"}).status_code == 403
    # Another user's token is not this session's.
    other = Console(served.url)
    try:
        assert other.login("bob", OTHER_PASSWORD).status_code == 303
        wrong = console.http.post(path, data={"note": "theirs", "csrf": other.csrf()})
        assert wrong.status_code == 403
    finally:
        other.close()
    without_note = console.act(path, note="  ")
    assert without_note.status_code == 422 and "note is required" in without_note.text
    assert Control.read_paused(redis_client, keys) == {}
    assert Audit(redis_client, keys).recent() == []
    metrics = httpx.get(served.url + "/metrics").text
    assert 'levers_console_actions_total{action="template pause",result="refused"} 5.0' in metrics


def test_forms_posted_from_another_site_are_refused(
    served: IngestServer, console: Console, redis_client: redis.Redis, keys: Keys
) -> None:
    evil = {"Origin": "https://evil.example"}
    path = f"/console/templates/{TEMPLATE}/pause"
    forged = console.http.post(path, data={"note": "x", "csrf": console.csrf()}, headers=evil)
    assert forged.status_code == 403 and "another site" in forged.text
    assert Control.read_paused(redis_client, keys) == {}
    login = httpx.post(
        served.url + "/console/login",
        data={"user": "alice", "password": "console-test-password-1"},
        headers=evil,
    )
    assert login.status_code == 403 and "set-cookie" not in login.headers
    same = {"Origin": served.url}
    done = console.http.post(path, data={"note": "ok", "csrf": console.csrf()}, headers=same)
    assert done.status_code == 303 and TEMPLATE in Control.read_paused(redis_client, keys)


def test_pause_and_resume_are_recorded_in_the_page_and_in_status(
    console: Console, redis_client: redis.Redis, keys: Keys, ingest_env: dict[str, str]
) -> None:
    paused = console.act(f"/console/templates/{TEMPLATE}/pause", note="carrier incident 42")
    assert paused.status_code == 303
    assert TEMPLATE in Control.read_paused(redis_client, keys)
    page = console.page(f"/console/templates/{TEMPLATE}")
    assert f"paused {TEMPLATE}" in page  # the result, shown once
    assert "by alice (console): carrier incident 42" in page
    assert f"paused {TEMPLATE}" not in console.page(f"/console/templates/{TEMPLATE}")
    assert console.act(f"/console/templates/{TEMPLATE}/resume", note="fixed").status_code == 303
    assert Control.read_paused(redis_client, keys) == {}
    overview = console.page("/console")
    assert "carrier incident 42" in overview and "fixed" in overview
    status = run("levers-admin", ["status"], ingest_env)
    assert status.returncode == 0, status.stderr
    assert f"alice (console) pause {TEMPLATE}: carrier incident 42" in status.stdout
    assert f"alice (console) resume {TEMPLATE}: fixed" in status.stdout


def test_cancel_then_replay_and_purge_dead_letters(
    console: Console, redis_client: redis.Redis, ingest_env: dict[str, str], keys: Keys
) -> None:
    settings = Settings.from_env(ingest_env)
    numbers = [f"+96655{i:07d}" for i in range(3)]
    seed(settings, redis_client, pending=numbers)
    cancelled = console.act(f"/console/templates/{TEMPLATE}/cancel", note="wrong list")
    assert cancelled.status_code == 303
    dead = DeadLetters(redis_client, keys)
    records = list(dead.select(reason="cancelled"))
    assert len(records) == 3
    listing = console.page("/console/dead-letters?reason=cancelled")
    for record in records:
        assert record["id"] in listing
    first, second, third = (r["id"] for r in records)
    replayed = console.act("/console/dead-letters/replay", id=first, note="right list after all")
    assert replayed.status_code == 303
    assert "replayed 1 dead letters" in console.page("/console/dead-letters")
    assert dead.count() == 2
    purged = console.http.post(
        "/console/dead-letters/purge",
        data={"csrf": console.csrf(), "id": [second, third], "note": "duplicates"},
    )
    assert purged.status_code == 303 and dead.count() == 0
    actions = [(a["action"], a["note"]) for a in Audit(redis_client, keys).recent()]
    assert ("dead-letters purge", "duplicates") in actions
    assert ("dead-letters replay", "right list after all") in actions
    assert ("cancel", "wrong list") in actions
    gone = console.http.get(f"/console/dead-letters/{first}")
    assert gone.status_code == 404


def test_numbers_are_masked_unless_an_allowed_user_asks(
    served: IngestServer, console: Console, redis_client: redis.Redis, ingest_env: dict[str, str]
) -> None:
    settings = Settings.from_env(ingest_env)
    held, pending = "+966551234567", "+966557654321"
    seed(settings, redis_client, pending=[pending], held=[(held, time.time() + 3600)])
    console.act(f"/console/templates/{TEMPLATE}/cancel", note="masking check")
    suppressed = "+966559998877"
    assert (
        console.act("/console/suppression/add", number=suppressed, note="asked").status_code == 303
    )
    dl_id = next(iter(DeadLetters(redis_client, Keys(settings.namespace)).ids()))
    pages = [
        "/console",
        "/console/holds",
        "/console/dead-letters",
        f"/console/dead-letters/{dl_id}",
        f"/console/templates/{TEMPLATE}",
        "/console/suppression",
    ]
    viewer = Console(served.url)
    try:
        assert viewer.login("bob", OTHER_PASSWORD).status_code == 303
        for who in (console, viewer):
            for path in pages:
                text = who.page(path)
                for number in (held, pending, suppressed):
                    assert number not in text, (path, number)
        assert "+96655*****67" in console.page("/console/dead-letters")
        # A number the operator searched for is shown masked; only the remove form carries
        # back what they typed.
        search = console.page("/console/suppression?number=%2B966559998877")
        assert "+96655*****77 is suppressed" in search
        assert search.count(suppressed) == 1 and f'name="number" value="{suppressed}"' in search
        # bob may not see a whole number, even when he asks.
        assert pending not in viewer.page(f"/console/dead-letters/{dl_id}?reveal=1")
    finally:
        viewer.close()
    revealed = console.page(f"/console/dead-letters/{dl_id}?reveal=1")
    assert pending in revealed or held in revealed
    audit = Audit(redis_client, Keys(settings.namespace)).recent()
    assert audit[0]["action"] == "reveal number" and audit[0]["who"] == "alice (console)"


def test_a_hold_is_released_and_expired_from_the_page(
    console: Console, redis_client: redis.Redis, ingest_env: dict[str, str], keys: Keys
) -> None:
    settings = Settings.from_env(ingest_env)
    later = time.time() + 3600
    seed(settings, redis_client, held=[("+966551000001", later), ("+966551000002", later)])
    page = console.page("/console/holds")
    refs = sorted(set(_values(page, "id")))
    assert len(refs) == 2
    assert (
        sorted(set(_values(console.page(f"/console/holds?batch_key={TEMPLATE}:0"), "id"))) == refs
    )
    assert _values(console.page(f"/console/holds?batch_key={TEMPLATE}:1"), "id") == []
    released = console.act(
        "/console/holds/release", id=refs[0], note="customer asked now", time_zone="Asia/Riyadh"
    )
    assert released.status_code == 303
    assert "released 1 held contacts" in console.page("/console/holds")
    # Released: due now, for the next flusher to move into a batch (with Asia/Riyadh's window).
    holds = Holds(redis_client, keys, buffer_config(settings))
    (released_hold,) = [h for h in holds.entries() if h.release_at and h.release_at < later - 60]
    assert released_hold.release_at <= time.time() + 1
    assert released_hold.schedule.time_zone == "Asia/Riyadh" and released_hold.reason
    assert console.act("/console/holds/expire", id=refs[1], note="stale").status_code == 303
    assert [r["reason"] for r in DeadLetters(redis_client, keys).select()] == ["expired"]
    assert redis_client.zcard(keys.held_since) == 1
    again = console.act("/console/holds/expire", id=refs[1], note="twice")
    assert again.status_code == 404 and "none of these contacts is held" in again.text
    bad_zone = console.act("/console/holds/release", id=refs[0], note="z", time_zone="Mars/Base")
    assert bad_zone.status_code == 422


def test_without_redis_the_console_says_so(
    serve: Callable[[dict[str, str]], IngestServer], ingest_env: dict[str, str]
) -> None:
    gone = {**console_env(ingest_env), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    server = serve(gone)
    operator = Console(server.url)
    try:
        login = operator.login()
        assert login.status_code == 503 and "Redis does not answer" in login.text
        operator.http.cookies.set("levers_console", "x" * 43, path="/console")
        for answer in (
            operator.http.get("/console"),
            operator.http.post(f"/console/templates/{TEMPLATE}/pause", data={"note": "x"}),
        ):
            assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    finally:
        operator.close()


def test_the_overview_shows_the_rate_against_the_limit_in_force(
    serve: Callable[[dict[str, str]], IngestServer],
    ingest_env: dict[str, str],
    redis_client: redis.Redis,
    keys: Keys,
) -> None:
    env = {**console_env(ingest_env), "LEVERS_ADAPTIVE_RATE": "true"}
    server = serve(env)
    redis_client.hset(keys.adaptive, "rate", "2.5")  # what the senders share now
    now_ms = int(time.time() * 1000)
    redis_client.zadd(keys.rate, {f"r{i}": now_ms - i * 100 for i in range(20)})
    redis_client.set(keys.pause, now_ms + 30_000, px=30_000)
    operator = Console(server.url)
    try:
        operator.login()
        page = operator.page("/console")
    finally:
        operator.close()
    assert "2.00<small>/s" in page  # 20 requests in the last 10 s
    assert "limit 200.0/s (adaptive: 2.50/s now)" in page
    assert "s left" in page  # the 429 pause


def test_logout_ends_the_session(console: Console) -> None:
    assert console.act("/console/logout").status_code == 303
    assert console.http.get("/console").status_code == 303


def _values(page: str, name: str) -> list[str]:
    import re

    return re.findall(rf'name="{name}" value="([^"]+)"', page)
