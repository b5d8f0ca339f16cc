"""The console on a big backlog: every page's answer time with a million contacts waiting and
a hundred thousand dead letters.

    python -m benchmarks.console [--queued 400000] [--pending 400000] [--held 200000]
                                 [--dead 100000] [--requests 20]

Builds the backlog with the product's own paths on a redis-server of its own (no worker runs,
so nothing moves while pages are timed): contacts enqueued by the producer and still in the
queue; contacts appended by append.lua, pending and cut into batches that wait; contacts held
until times spread over the next day; a template cancelled through `Control.cancel`, which
makes its contacts dead letters. Then levers-ingest serves the console (uvicorn, in this
process) and each page is fetched `--requests` times by a logged-in client, over HTTP; the
figures are wall-clock answer times (goal: every page under 200 ms).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis
import uvicorn

from producers.api import Producer
from producers.ingest.app import create_app
from tests.servers import RedisServer, free_port, wait_for
from worker.backlog import read_backlog
from worker.broker import build_broker
from worker.buffers import Buffers
from worker.contacts import validate_contact
from worker.control import Control
from worker.eligibility import SEND_NOW, Hold, Verdict
from worker.keys import Keys
from worker.passwords import hash_password
from worker.runtime import buffer_config
from worker.scripting import redis_now
from worker.settings import Settings

TEMPLATES = [str(uuid.UUID(int=i + 1)) for i in range(10)]
CANCELLED = str(uuid.UUID(int=999))
PASSWORD = "benchmark-console-password"
CHUNK = 5000


def contacts(start: int, count: int, template: str) -> list[dict[str, Any]]:
    return [
        {"number": f"+9665{50_000_000 + i:08d}", "template_id": template, "first_name": "Bench"}
        for i in range(start, start + count)
    ]


def append(
    buffers: Buffers, start: int, count: int, template: str, hold_until: float | None
) -> None:
    for offset in range(0, count, CHUNK):
        rows: list[tuple[Any, str, Verdict]] = []
        for i, fields in enumerate(contacts(start + offset, min(CHUNK, count - offset), template)):
            verdict: Verdict = SEND_NOW
            if hold_until is not None:
                # Spread over the day, as calling windows opening zone by zone would.
                verdict = Hold(int((hold_until + (i % 1440) * 60) * 1000), "window_closed")
            rows.append((validate_contact(fields), f"bench-{start + offset + i}:0", verdict))
        buffers.append_many(rows)


def build(settings: Settings, client: redis.Redis, args: argparse.Namespace) -> None:
    keys = Keys(settings.namespace)
    buffers = Buffers(client, keys, buffer_config(settings))
    producer = Producer(settings)
    started = time.perf_counter()
    n = 0
    for i, template in enumerate(TEMPLATES):
        share = args.queued // len(TEMPLATES)
        for offset in range(0, share, CHUNK):
            producer.enqueue_contacts(contacts(n + offset, min(CHUNK, share - offset), template))
        n += share
        append(buffers, n, args.pending // len(TEMPLATES), template, None)
        n += args.pending // len(TEMPLATES)
        append(buffers, n, args.held // len(TEMPLATES), template, redis_now(client) + 3600 + i)
        n += args.held // len(TEMPLATES)
        print(f"  template {i + 1}/{len(TEMPLATES)} filled ({time.perf_counter() - started:.0f} s)")
    producer.close()
    append(buffers, n, args.dead, CANCELLED, None)
    control = Control(
        client,
        keys,
        buffer_config(settings),
        build_broker(settings, client=client),
        batch_retention_seconds=settings.batch_retention_seconds,
    )
    control.cancel(CANCELLED, note="benchmark", who="benchmark")
    print(f"  dead letters made ({time.perf_counter() - started:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queued", type=int, default=400_000)
    parser.add_argument("--pending", type=int, default=400_000)
    parser.add_argument("--held", type=int, default=200_000)
    parser.add_argument("--dead", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="levers-console-"))
    server = RedisServer(work / "redis").start()
    client = redis.Redis.from_url(server.url)
    env = {
        "REDIS_URL": server.url,
        "LEVERS_NAMESPACE": f"console-{uuid.uuid4().hex[:6]}",
        "LEVERS_BATCH_MAX_SIZE": "100",
        "LEVERS_INGEST_INSECURE_NO_AUTH": "true",
        "LEVERS_CONSOLE_USERS": f"bench:{hash_password(PASSWORD)}",
        "LEVERS_MAX_BACKLOG_BYTES": str(16 * 1024**3),
    }
    settings = Settings.from_env(env)
    try:
        print("building the backlog ...")
        build(settings, client, args)
        backlog = read_backlog(client, Keys(settings.namespace))
        dead = int(client.zcard(Keys(settings.namespace).dead_index))
        memory = int(client.info("memory")["used_memory"]) / 1024**2
        print(
            f"backlog: {backlog.total:,} contacts waiting (queued {backlog.queued:,}, pending "
            f"{backlog.pending:,}, held {backlog.held:,}, in batches "
            f"{sum(backlog.in_flight.values()):,}); dead letters {dead:,}; Redis {memory:,.0f} MiB"
        )
        time_pages(settings, args.requests)
    finally:
        server.stop()


def time_pages(settings: Settings, requests: int) -> None:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for(lambda: uv.started, 15, what="uvicorn")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        login = http.post("/console/login", data={"user": "bench", "password": PASSWORD})
        assert login.status_code == 303, login.text
        listing = http.get("/console/dead-letters").text
        dl_id = re.search(r'href="/console/dead-letters/([^"?]+)"', listing)
        holds = http.get(f"/console/templates/{TEMPLATES[0]}").text
        batch = re.search(r'href="/console/batches/([^"]+)"', holds)
        pages = [
            ("overview", "/console"),
            ("template", f"/console/templates/{TEMPLATES[0]}"),
            ("dead letters", "/console/dead-letters"),
            ("dead letters, page 100", "/console/dead-letters?start=5000"),
            ("dead letters, filter matching none", "/console/dead-letters?reason=expired"),
            ("dead letter", f"/console/dead-letters/{dl_id.group(1) if dl_id else 'none'}"),
            ("holds", "/console/holds"),
            ("holds, filter matching none", "/console/holds?reason=not_before"),
            ("holds, by batch key", f"/console/holds?batch_key={TEMPLATES[3]}:0"),
            ("do-not-call list", "/console/suppression"),
            ("do-not-call search", "/console/suppression?number=%2B966550000001"),
            ("batch", f"/console/batches/{batch.group(1) if batch else 'none'}"),
        ]
        print(f"\n{'page':<36} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  status")
        worst = 0.0
        for name, path in pages:
            times, status = [], 0
            for _ in range(requests):
                t0 = time.perf_counter()
                answer = http.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                status = answer.status_code
            times.sort()
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            worst = max(worst, times[-1])
            print(
                f"{name:<36} {statistics.median(times):>8.1f} {p95:>8.1f} {times[-1]:>8.1f}  "
                f"{status}"
            )
        print(f"\nslowest answer of any page: {worst:.0f} ms (goal: under 200 ms)")
    uv.should_exit = True
    thread.join(10)


if __name__ == "__main__":
    main()
