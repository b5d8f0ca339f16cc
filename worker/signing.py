"""Svix-style signatures, made with the Svix library: the sandbox's webhooks and our callbacks.

A receiver verifies them as it would Levers' own webhooks, with any Svix or Standard Webhooks
library (`svix.webhooks.Webhook(secret).verify(body, headers)`): HMAC-SHA256 over
`<id>.<timestamp>.<body>` with the secret's bytes, in `svix-signature` as `v1,<base64>`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def svix_headers(secret: str, message_id: str, timestamp: float, body: bytes) -> dict[str, str]:
    """The headers of one signed delivery of `body` (the signature covers id and timestamp)."""
    # Imported here: the Svix package takes about a second to import.
    from svix.webhooks import Webhook

    moment = datetime.fromtimestamp(int(timestamp), tz=UTC)
    return {
        "svix-id": message_id,
        "svix-timestamp": str(int(timestamp)),
        "svix-signature": Webhook(secret).sign(message_id, moment, body.decode()),
        "content-type": "application/json",
    }
