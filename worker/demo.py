"""`python -m worker.demo`: the whole product end to end on this machine.

Uses the Redis at REDIS_URL (or starts a private `redis-server`), starts the sandbox and a
worker, enqueues about 1,000 sample contacts over three templates and both `updateExisting`
values, waits until every one was sent, prints what the sandbox received per batch key, and
stops what it started. It writes only under a namespace of its own and deletes only that.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis

from producers.api import Producer
from worker.backlog import read_totals
from worker.contacts import batch_key
from worker.keys import Keys
from worker.local import RedisServer, answers, free_port
from worker.sandbox import Sandbox, SandboxConfig
from worker.settings import Settings

TEMPLATES = [None, "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10", "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"]
CONTACTS = 1000
DEMO_ID, DEMO_SECRET = "demo-client", "demo-secret"


def sample_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(CONTACTS):
        rows.append(
            {
                "number": f"+9665{10_000_000 + i:08d}",
                "first_name": f"Customer {i}",
                "template_id": TEMPLATES[i % 3],
                "update_existing": (i // 3) % 2 == 1,
                "metadata": {"crm_id": str(i)},
                "prompt_tags": {"amount": str(100 + i % 50)},
            }
        )
    # A few rows a real import would have: refused before anything is enqueued.
    rows.append({"number": "+96612341234"})  # too short to be a Saudi number
    rows.append({"number": "0501234567"})  # national format, no region given
    rows.append({"number": "+966501234567", "prompt_tags": {"amount": 120}})
    return rows


def run() -> int:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    own_redis = None
    if not answers(url):
        if shutil.which("redis-server") is None:
            print(
                f"levers demo: no Redis answers at {url} and redis-server is not installed; "
                "install it (apt-get install redis-server) or set REDIS_URL."
            )
            return 1
        own_redis = RedisServer(Path(tempfile.mkdtemp(prefix="levers-demo-redis-"))).start()
        url = own_redis.url
    namespace = f"levers-demo-{uuid.uuid4().hex[:8]}"
    sandbox = Sandbox(SandboxConfig(client_id=DEMO_ID, client_secret=DEMO_SECRET)).start()
    env = {
        **os.environ,
        "REDIS_URL": url,
        "LEVERS_NAMESPACE": namespace,
        "LEVERS_BASE_URL": sandbox.url,
        "LEVERS_CLIENT_ID": DEMO_ID,
        "LEVERS_CLIENT_SECRET": DEMO_SECRET,
        "LEVERS_METRICS_PORT": str(free_port()),
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="levers-demo-metrics-"),
    }
    settings = Settings.from_env(env)
    print(
        f"redis {url} (namespace {namespace}), sandbox {sandbox.url}, "
        f"batches of {settings.batch_max_size} or {settings.batch_max_wait_seconds:g} s, "
        f"{settings.max_requests_per_second:g} requests/s"
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "--processes", "2", "--threads", "8"],
        env={**env, "LEVERS_LOG_LEVEL": "WARNING"},
    )
    client = redis.Redis.from_url(url)
    try:
        started = time.monotonic()
        producer = Producer(settings)
        result = producer.enqueue_contacts(sample_rows())
        producer.close()
        print(f"enqueued {len(result.accepted)} contacts; refused {len(result.rejected)}:")
        for rejection in result.rejected:
            print(f"  row {rejection.index}: {rejection.reason}: {rejection.message}")
        expected = len(result.accepted)
        deadline = time.monotonic() + 120
        while sum(len(r.body["contacts"]) for r in sandbox.accepted()) < expected:
            if worker.poll() is not None or time.monotonic() > deadline:
                print("levers demo: not every contact was sent; see the worker log above")
                return 1
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        print_table(sandbox, expected, elapsed)
        # What the worker itself recorded, which should match the sandbox's count.
        totals = read_totals(client, Keys(namespace))
        sent, batches = totals.get("contacts_sent", 0), totals.get("batches_sent", 0)
        dead = totals.get("contacts_dead", 0)
        print(f"worker totals: {sent} contacts sent in {batches} requests, {dead} dead letters")
        return 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        sandbox.stop()
        for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            client.delete(key)
        client.close()
        if own_redis:
            own_redis.stop()
            shutil.rmtree(own_redis.directory, ignore_errors=True)


def print_table(sandbox: Sandbox, expected: int, elapsed: float) -> None:
    contacts: dict[str, int] = defaultdict(int)
    batches: dict[str, int] = defaultdict(int)
    numbers: set[str] = set()
    for request in sandbox.accepted():
        key = batch_key(request.body.get("aiSettingsTemplateId"), request.body["updateExisting"])
        contacts[key] += len(request.body["contacts"])
        batches[key] += 1
        numbers.update(c["numberToCall"] for c in request.body["contacts"])
    print()
    print(f"{'batch key (template:updateExisting)':<44} {'contacts':>8} {'requests':>8}")
    for key in sorted(contacts):
        print(f"{key:<44} {contacts[key]:>8} {batches[key]:>8}")
    total = sum(contacts.values())
    print(f"{'total':<44} {total:>8} {sum(batches.values()):>8}")
    print(
        f"\n{total} of {expected} accepted contacts reached the sandbox "
        f"({len(numbers)} distinct numbers) in {elapsed:.1f} s"
    )


if __name__ == "__main__":
    raise SystemExit(run())
