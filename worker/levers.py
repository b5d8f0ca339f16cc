"""HTTP client for the Levers API: bearer tokens and the bulk call endpoint.

`LeversClient.call_bulk` sends one request and returns Levers' response, whatever its status;
classifying that response (sent, retry, dead letter) is the sender's job. Transport failures
are wrapped in `LeversTransportError`, whose `written` flag tells an error that surely kept the
request from Levers (connect refused) from one after which Levers may have acted on it (read
timeout, connection dropped): the difference between a safe retry and a possible double dial.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from worker.errors import LeversAuthError, LeversTransportError

AUTH_PATH = "/auth/v1/api-key/auth"
BULK_PATH = "/api-service/v1/ai/phone-calls/action/call-bulk"
# Refresh a token this long before its `exp`, so a request never leaves with a dying token.
REFRESH_MARGIN_SECONDS = 60.0
# A token whose lifetime Levers does not tell is refreshed after this long.
UNKNOWN_LIFETIME_SECONDS = 600.0

# Errors raised before any byte of the request could reach Levers.
_NOT_WRITTEN = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    request: float = 30.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(self.request, connect=self.connect)


class TokenProvider:
    """A bearer token: fixed (`LEVERS_API_TOKEN`) or from client credentials, cached until
    shortly before its `exp` and shared by the threads of one process."""

    def __init__(
        self,
        http: httpx.Client,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_token: str | None = None,
        clock: Callable[[], float] = time.time,
        on_token: Callable[[bool], object] | None = None,
    ) -> None:
        if not api_token and not (client_id and client_secret):
            raise LeversAuthError(
                "no Levers credentials: set LEVERS_API_TOKEN or LEVERS_CLIENT_ID and "
                "LEVERS_CLIENT_SECRET"
            )
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self._fixed = api_token
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._on_token = on_token or (lambda ok: None)

    def get(self) -> str:
        if self._fixed:
            return self._fixed
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                try:
                    self._token, self._refresh_at = self._authenticate()
                except LeversAuthError:
                    self._on_token(False)
                    raise
                self._on_token(True)
            return self._token

    def invalidate(self, token: str) -> bool:
        """Forget `token` after a 401; False when it is fixed and so cannot be refreshed."""
        if self._fixed:
            return False
        with self._lock:
            if self._token == token:
                self._token = None
        return True

    def _authenticate(self) -> tuple[str, float]:
        try:
            response = self._http.post(
                AUTH_PATH, json={"clientId": self._client_id, "clientSecret": self._client_secret}
            )
        except httpx.HTTPError as exc:
            raise LeversAuthError(f"Levers auth endpoint unreachable: {exc!r}") from exc
        if response.status_code != 200:
            raise LeversAuthError(
                f"Levers auth refused: HTTP {response.status_code}", response=response
            )
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise LeversAuthError(
                "Levers auth answered without access_token", response=response
            ) from exc
        return token, self._refresh_time(token)

    def _refresh_time(self, token: str) -> float:
        now = self._clock()
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            exp = float(claims["exp"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            return now + UNKNOWN_LIFETIME_SECONDS
        lifetime = exp - now
        # Short-lived tokens are refreshed at half life rather than a fixed margin.
        return now + max(0.0, lifetime - REFRESH_MARGIN_SECONDS, lifetime / 2)


def bulk_body(
    contacts: Sequence[dict[str, Any]], template_id: str | None, update_existing: bool
) -> dict[str, Any]:
    """The documented call-bulk body; `aiSettingsTemplateId` omitted for the default template."""
    body: dict[str, Any] = {"contacts": list(contacts), "updateExisting": update_existing}
    if template_id is not None:
        body["aiSettingsTemplateId"] = template_id
    return body


class LeversClient:
    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        api_token: str | None = None,
        timeouts: Timeouts = Timeouts(),
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        on_token: Callable[[bool], object] | None = None,
    ) -> None:
        """`on_token(ok)` is told of every attempt to obtain a token (for metrics)."""
        self.http = httpx.Client(
            base_url=base_url,
            timeout=timeouts.to_httpx(),
            transport=transport,
            headers={"User-Agent": "levers-batcher"},
        )
        self.tokens = TokenProvider(
            self.http,
            client_id=client_id,
            client_secret=client_secret,
            api_token=api_token,
            clock=clock,
            on_token=on_token,
        )

    def bulk_request(self, body: dict[str, Any]) -> httpx.Request:
        """The bulk request, encoded and carrying a token (authenticating now if needed), so
        that sending it at its rate-limit slot costs no auth round trip and no encoding."""
        token = self.tokens.get()
        return self.http.build_request(
            "POST", BULK_PATH, json=body, headers={"Authorization": f"Bearer {token}"}
        )

    def send(self, request: httpx.Request) -> httpx.Response:
        """Send a bulk request; on a 401, re-authenticate once and send it again."""
        response = self._send(request)
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if response.status_code == 401 and self.tokens.invalidate(token):
            request.headers["Authorization"] = f"Bearer {self.tokens.get()}"
            response = self._send(request)
        return response

    def call_bulk(self, body: dict[str, Any]) -> httpx.Response:
        """POST one bulk request (see `send`)."""
        return self.send(self.bulk_request(body))

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.http.send(request)
        except _NOT_WRITTEN as exc:
            raise LeversTransportError(
                f"request not sent: {type(exc).__name__}", written=False, request=request
            ) from exc
        except httpx.TransportError as exc:
            raise LeversTransportError(
                f"no answer after the request was sent: {type(exc).__name__}",
                written=True,
                request=request,
            ) from exc

    def close(self) -> None:
        self.http.close()
