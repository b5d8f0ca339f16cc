"""The Levers HTTP client with an injected transport: tokens, 401 handling, transport errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import jwt
import pytest

from tests.conftest import FakeClock
from worker.errors import LeversAuthError, LeversTransportError
from worker.levers import AUTH_PATH, BULK_PATH, LeversClient, bulk_body

Handler = Callable[[httpx.Request], httpx.Response]


def token(exp: float | None) -> str:
    claims = {"sub": "c"} if exp is None else {"sub": "c", "exp": int(exp)}
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


class FakeLevers:
    """Answers auth with tokens that expire `ttl` seconds from the fake clock."""

    def __init__(self, clock: FakeClock, ttl: float = 3600) -> None:
        self.clock = clock
        self.ttl = ttl
        self.issued: list[str] = []
        self.bulk_statuses: list[int] = []
        self.bulk_auth: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == AUTH_PATH:
            assert json.loads(request.content) == {"clientId": "id", "clientSecret": "secret"}
            self.issued.append(token(self.clock() + self.ttl))
            return httpx.Response(200, json={"access_token": self.issued[-1]})
        assert request.url.path == BULK_PATH
        self.bulk_auth.append(request.headers["Authorization"])
        status = self.bulk_statuses.pop(0) if self.bulk_statuses else 201
        return httpx.Response(status, json={})


def client_for(handler: Handler, clock: FakeClock, **kwargs: str) -> LeversClient:
    creds = kwargs or {"client_id": "id", "client_secret": "secret"}
    return LeversClient(
        "https://levers.test", transport=httpx.MockTransport(handler), clock=clock, **creds
    )


def test_token_is_cached_and_refreshed_before_exp(clock: FakeClock) -> None:
    levers = FakeLevers(clock, ttl=3600)
    client = client_for(levers, clock)
    client.call_bulk(bulk_body([], None, False))
    client.call_bulk(bulk_body([], None, False))
    assert len(levers.issued) == 1
    clock.advance(3600 - 61)
    client.call_bulk(bulk_body([], None, False))
    assert len(levers.issued) == 1
    clock.advance(2)  # now within a minute of exp
    client.call_bulk(bulk_body([], None, False))
    assert len(levers.issued) == 2
    assert levers.bulk_auth[-1] == f"Bearer {levers.issued[-1]}"


def test_short_lived_token_is_refreshed_at_half_life(clock: FakeClock) -> None:
    levers = FakeLevers(clock, ttl=30)
    client = client_for(levers, clock)
    client.call_bulk(bulk_body([], None, False))
    clock.advance(14)
    client.call_bulk(bulk_body([], None, False))
    assert len(levers.issued) == 1
    clock.advance(2)
    client.call_bulk(bulk_body([], None, False))
    assert len(levers.issued) == 2


def test_401_reauthenticates_once_and_resends(clock: FakeClock) -> None:
    levers = FakeLevers(clock)
    levers.bulk_statuses = [401, 201]
    client = client_for(levers, clock)
    assert client.call_bulk(bulk_body([], None, False)).status_code == 201
    assert len(levers.issued) == 2
    levers.bulk_statuses = [401, 401]
    assert client.call_bulk(bulk_body([], None, False)).status_code == 401
    assert len(levers.issued) == 3  # once, not in a loop


def test_fixed_token_is_used_as_is(clock: FakeClock) -> None:
    levers = FakeLevers(clock)
    client = client_for(levers, clock, api_token="fixed-token")
    levers.bulk_statuses = [401]
    assert client.call_bulk(bulk_body([], None, False)).status_code == 401
    assert levers.issued == []
    assert levers.bulk_auth == ["Bearer fixed-token"]


def test_bad_credentials_raise_auth_error(clock: FakeClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "Invalid credentials"})

    with pytest.raises(LeversAuthError) as info:
        client_for(refuse, clock).call_bulk(bulk_body([], None, False))
    assert info.value.response is not None and info.value.response.status_code == 401


def test_missing_credentials_are_refused_up_front(clock: FakeClock) -> None:
    with pytest.raises(LeversAuthError):
        LeversClient("https://levers.test", clock=clock)


@pytest.mark.parametrize(
    ("error", "written"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow"), False),
        (httpx.ReadTimeout("no answer"), True),
        (httpx.RemoteProtocolError("dropped"), True),
        (httpx.ReadError("reset"), True),
    ],
)
def test_transport_errors_say_whether_the_request_left(
    clock: FakeClock, error: httpx.TransportError, written: bool
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        if request.url.path == AUTH_PATH:
            return httpx.Response(200, json={"access_token": token(clock() + 3600)})
        raise error

    with pytest.raises(LeversTransportError) as info:
        client_for(fail, clock).call_bulk(bulk_body([], None, False))
    assert info.value.written is written


def test_bulk_body_omits_default_template() -> None:
    contacts = [{"numberToCall": "+966501234567"}]
    assert bulk_body(contacts, None, False) == {"contacts": contacts, "updateExisting": False}
    assert bulk_body(contacts, "t", True)["aiSettingsTemplateId"] == "t"
