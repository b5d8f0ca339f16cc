"""Bearer-token auth for the ingest routes (LEVERS_INGEST_TOKENS).

A dependency of the router it guards, not of the app: other routers of the same service carry
their own (Levers' webhooks are signed instead, an operator console has its own credentials).
Several tokens may be valid at once, so a token is rotated without downtime: add the new one,
move the clients, remove the old one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ingestToken",
    description="One of the tokens in LEVERS_INGEST_TOKENS.",
)


def _digest(token: str) -> bytes:
    # Digests have one length, so the comparison leaks not even the token's length.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class Tokens:
    """Several valid tokens, each compared in constant time, every one of them each time."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._digests = [_digest(token) for token in tokens]

    def match(self, given: str) -> int | None:
        """The place (0-based) of the token `given` is, or None. No early exit: the time taken
        tells not which token, if any, matched."""
        digest = _digest(given)
        found = None
        for place, candidate in enumerate(self._digests):
            if hmac.compare_digest(digest, candidate) and found is None:
                found = place
        return found


class BearerAuth:
    """401 without a bearer token (with `WWW-Authenticate`), 403 with a token that is not one
    of `tokens`. Every configured token is compared, each in constant time."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if not tokens:
            raise ValueError("BearerAuth needs at least one token")
        self._tokens = Tokens(tokens)

    # async: FastAPI runs a plain function in its thread pool, a thread hop per request.
    async def __call__(
        self,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)],
    ) -> None:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "an Authorization: Bearer <token> header is required",
                headers={"WWW-Authenticate": 'Bearer realm="levers-ingest"'},
            )
        if self._tokens.match(credentials.credentials) is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this bearer token is not accepted")
