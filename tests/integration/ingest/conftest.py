"""Fixtures for levers-ingest: the app served by a real uvicorn on a free port, in a thread.

The app is built with `create_app` from the same settings the worker fixtures use (the same
Redis and namespace), so a contact posted here is the one the worker sends to the sandbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from producers.ingest.app import create_app
from tests.servers import free_port, wait_for
from worker.settings import Settings

TOKEN = "it-ingest-token-0123456789"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ROTATED_TOKEN = "it-ingest-token-next-987654"


class IngestServer:
    """uvicorn serving `app` on 127.0.0.1 in a daemon thread (signals stay with pytest)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="ingest", daemon=True)

    def start(self) -> IngestServer:
        self.thread.start()
        wait_for(lambda: self.server.started, 15, what="uvicorn to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def client(self, token: str | None = TOKEN, **options: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **options)


@pytest.fixture
def ingest_env(worker_env: dict[str, str]) -> dict[str, str]:
    return {
        **worker_env,
        "LEVERS_INGEST_TOKENS": f"{TOKEN},{ROTATED_TOKEN}",
        "LEVERS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


@pytest.fixture
def serve() -> Iterator[Callable[[dict[str, str]], IngestServer]]:
    """Start an ingest app from an environment mapping; stopped after the test."""
    started: list[IngestServer] = []

    def start(env: dict[str, str]) -> IngestServer:
        server = IngestServer(create_app(Settings.from_env(env))).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def ingest(
    serve: Callable[[dict[str, str]], IngestServer], ingest_env: dict[str, str]
) -> IngestServer:
    return serve(ingest_env)


@pytest.fixture
def client(ingest: IngestServer) -> Iterator[httpx.Client]:
    with ingest.client() as http:
        yield http
