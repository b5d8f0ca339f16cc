"""The naive design: one bulk request per contact, straight from the contact's actor.

    python -m benchmarks.naive --processes N --threads M

What a team would write without levers-batcher: the actor that receives a contact message
(same queue and actor name as `levers_aggregate`) validates it the same way and POSTs it alone
to the call-bulk endpoint with httpx. A token is fetched from the auth endpoint once per process.
No rate limiting, no batching, no bookkeeping in Redis: an upper bound for that design.
"""

from __future__ import annotations

from typing import Any

import httpx
from dramatiq.brokers.redis import RedisBroker

from benchmarks import runner
from worker.contacts import validate_contact
from worker.levers import AUTH_PATH, BULK_PATH, bulk_body
from worker.settings import Settings


class OneByOne:
    """POSTs one contact per request; one httpx client (a connection pool) per process."""

    def __init__(self, settings: Settings, pool_size: int) -> None:
        self.settings = settings
        self.http = httpx.Client(
            base_url=settings.base_url,
            timeout=httpx.Timeout(
                settings.request_timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            limits=httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size),
        )
        answer = self.http.post(
            AUTH_PATH,
            json={"clientId": settings.client_id, "clientSecret": settings.client_secret},
        )
        answer.raise_for_status()
        self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def send(self, payload: Any) -> None:
        contact = validate_contact(payload, self.settings.default_region)
        body = bulk_body([contact.to_levers()], contact.template_id, contact.update_existing)
        answer = self.http.post(BULK_PATH, json=body, headers=self.headers)
        if answer.status_code != 201:
            # dramatiq retries the message later, as a naive worker would.
            raise RuntimeError(f"call-bulk answered {answer.status_code}")


def build(settings: Settings) -> RedisBroker:
    poster = OneByOne(settings, pool_size=64)

    def levers_aggregate(payload: Any) -> None:
        poster.send(payload)

    return runner.broker_with(settings, levers_aggregate)


if __name__ == "__main__":
    raise SystemExit(runner.main("benchmarks.naive", build, None))
