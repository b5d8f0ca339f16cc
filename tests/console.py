"""For the console's tests: users, a logged-in HTTP client, and a backlog put in place by the
aggregator's own scripts (pending and held contacts of a template)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import httpx
import redis

from worker.buffers import Buffers
from worker.contacts import validate_contact
from worker.eligibility import SEND_NOW, Hold, Verdict
from worker.keys import Keys
from worker.passwords import hash_password
from worker.runtime import buffer_config
from worker.settings import Settings

PASSWORD = "console-test-password-1"
OTHER_PASSWORD = "console-viewer-password-2"
# alice may ask to see whole numbers; bob may not.
USERS = f"alice:{hash_password(PASSWORD)},bob:{hash_password(OTHER_PASSWORD)}"
CONSOLE_TOKEN = "console-token-for-the-night-shift"
TEMPLATE = "5b0c4a6e-3f9e-4c41-9d0b-6f8f3f0f2a11"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def console_env(env: dict[str, str]) -> dict[str, str]:
    return {
        **env,
        "LEVERS_CONSOLE_USERS": USERS,
        "LEVERS_CONSOLE_TOKENS": f"another-console-token-0001,{CONSOLE_TOKEN}",
        "LEVERS_CONSOLE_REVEAL_USERS": "alice",
    }


class Console:
    """An operator's HTTP client of /console (cookies kept, redirects not followed)."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def login(self, user: str = "alice", password: str = PASSWORD) -> httpx.Response:
        return self.http.post("/console/login", data={"user": user, "password": password})

    def csrf(self, path: str = "/console") -> str:
        page = self.http.get(path)
        assert page.status_code == 200, page.text
        found = _CSRF.search(page.text)
        assert found, "no CSRF token in the page"
        return found.group(1)

    def act(self, path: str, **data: Any) -> httpx.Response:
        return self.http.post(path, data={"csrf": self.csrf(), **data})

    def page(self, path: str) -> str:
        response = self.http.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
        return response.text

    def close(self) -> None:
        self.http.close()


def seed(
    settings: Settings,
    client: redis.Redis,
    *,
    pending: Iterable[str] = (),
    held: Iterable[tuple[str, float]] = (),
    template: str | None = TEMPLATE,
    prefix: str = "seed",
) -> list[str]:
    """Put contacts pending (numbers) and held until a time (number, epoch s) in one template,
    through append.lua; returns their contact ids."""
    buffers = Buffers(client, Keys(settings.namespace), buffer_config(settings))
    rows: list[tuple[Any, str, Verdict]] = []
    for i, number in enumerate(pending):
        rows.append((_contact(number, template), f"{prefix}-p:{i}", SEND_NOW))
    for i, (number, until) in enumerate(held):
        rows.append(
            (_contact(number, template), f"{prefix}-h:{i}", Hold(int(until * 1000), "not_before"))
        )
    buffers.append_many(rows)
    return [contact_id for _, contact_id, _ in rows]


def _contact(number: str, template: str | None) -> Any:
    fields: dict[str, Any] = {"number": number, "first_name": "Test"}
    if template:
        fields["template_id"] = template
    return validate_contact(fields)
