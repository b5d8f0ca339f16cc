"""`python -m worker.demo` (`./scripts/demo`): the whole product end to end on this machine.

Uses the Redis at REDIS_URL (or starts a private `redis-server`), starts the sandbox, a worker
and levers-ingest, writes 1,003 sample contacts over three templates and both `updateExisting`
values to a CSV file (three of them invalid) and imports it with `levers-enqueue`, waits until
every accepted contact was sent, prints what the sandbox received per batch key; then, as the
sandbox sends each call's signed `phone_call.ended` webhook to levers-ingest, waits for the
worker to record every outcome and prints them per template. Last, one contact enqueued with a
`not_before` a few seconds ahead is shown held (`levers-admin holds list`) and then released
and sent (worker/demo_hold.py). It stops what it started, writes only under a namespace of its
own and deletes only that.

With `--ingest` it imports nothing itself: it starts `levers-ingest` too, prints a token, a
curl command and the operator console's address with a login made for this run, and prints
each request the sandbox receives until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import redis

from worker.backlog import read_totals
from worker.contacts import RESERVED_METADATA_KEY, batch_key, mask_number
from worker.demo_hold import show_a_hold
from worker.keys import Keys
from worker.local import RedisServer, answers, free_port
from worker.outcomes import OutcomeStore
from worker.passwords import hash_password
from worker.presence import no_worker_warning
from worker.sandbox import Sandbox, SandboxConfig
from worker.sandbox_webhooks import WebhookConfig
from worker.settings import Settings

TEMPLATES = [None, "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10", "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"]
CONTACTS = 1000
DEMO_ID, DEMO_SECRET = "demo-client", "demo-secret"
DEMO_INGEST_PORT = 8088
WEBHOOK_PATH = "/v1/webhooks/levers"


def write_sample_csv(path: Path) -> int:
    """The demo's contacts as a CSV a user might export; returns how many are valid."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["number", "first_name", "template_id", "update_existing", "meta:crm_id", "tag:amount"]
        )
        for i in range(CONTACTS):
            writer.writerow(
                [
                    f"+9665{10_000_000 + i:08d}",
                    f"Customer {i}",
                    TEMPLATES[i % 3] or "",
                    "true" if (i // 3) % 2 == 1 else "false",
                    str(i),
                    str(100 + i % 50),
                ]
            )
        # A few rows a real import would have: refused, each reported by its line.
        writer.writerow(["+96612341234", "Too short", "", "", "", ""])  # not a valid number
        writer.writerow(["0501234567", "National", "", "", "", ""])  # no region given
        writer.writerow(["+966501234567", "Bad template", "not-a-uuid", "", "", ""])
    return CONTACTS


ABOUT = "The product end to end on this machine; ./scripts/demo --help says what it does."


def run(ingest: bool = False) -> int:
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
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    # The calls the sandbox "places" end within a second or so, in a realistic mix.
    webhooks = WebhookConfig(secret=webhook_secret, delay_seconds=0.2, jitter_seconds=0.8)
    sandbox = Sandbox(
        SandboxConfig(client_id=DEMO_ID, client_secret=DEMO_SECRET), webhooks=webhooks
    ).start()
    env = {
        **os.environ,
        "REDIS_URL": url,
        "LEVERS_NAMESPACE": namespace,
        "LEVERS_BASE_URL": sandbox.url,
        "LEVERS_CLIENT_ID": DEMO_ID,
        "LEVERS_CLIENT_SECRET": DEMO_SECRET,
        # The sample numbers are called whatever the hour here; a contact with a not_before
        # shows a hold instead (see docs/calling-hours.md for the policy in production).
        "LEVERS_DEFAULT_WINDOW": "always",
        "LEVERS_METRICS_PORT": str(free_port()),
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="levers-demo-metrics-"),
        "LEVERS_WEBHOOK_SECRET": webhook_secret,
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
    work = Path(tempfile.mkdtemp(prefix="levers-demo-"))
    ingest_process: subprocess.Popen[bytes] | None = None
    try:
        wait_ready(settings, client, worker)
        if ingest:
            return serve_ingest(env, sandbox, worker)
        # levers-ingest receives the sandbox's webhooks, as it would Levers' own.
        ingest_process, ingest_url = start_ingest(env, free_port(), secrets.token_urlsafe(24))
        sandbox.webhooks.configure(url=ingest_url + WEBHOOK_PATH)
        if not wait_ingest_ready(ingest_url, ingest_process):
            return 1
        started = time.monotonic()
        contacts = work / "contacts.csv"
        valid = write_sample_csv(contacts)
        print(f"$ levers-enqueue {contacts.name}")
        subprocess.run(
            [sys.executable, "-m", "producers.importer", contacts.name, "--no-progress"],
            env=env,
            cwd=work,
            check=False,
        )
        expected = valid
        deadline = time.monotonic() + 120
        while sum(len(r.body["contacts"]) for r in sandbox.accepted()) < expected:
            if worker.poll() is not None or time.monotonic() > deadline:
                print("levers demo: not every contact was sent; see the worker log above")
                return 1
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        print_table(sandbox, expected, elapsed)
        # What the worker itself recorded, which should match the sandbox's count: the last
        # answer reaches the sandbox a moment before the worker records it.
        deadline = time.monotonic() + 10
        totals = read_totals(client, Keys(namespace))
        while totals.get("contacts_sent", 0) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
            totals = read_totals(client, Keys(namespace))
        sent, batches = totals.get("contacts_sent", 0), totals.get("batches_sent", 0)
        dead = totals.get("contacts_dead", 0)
        print(f"worker totals: {sent} contacts sent in {batches} requests, {dead} dead letters")
        store = OutcomeStore(client, Keys(namespace), settings.outcome_retention_seconds)
        # Each sent contact carries its contact id in our correlation metadata.
        ids = [
            contact["metadata"][RESERVED_METADATA_KEY]["contact_id"]
            for request in sandbox.accepted()
            for contact in request.body["contacts"]
        ]
        outcomes = wait_outcomes(store, ids, worker, deadline=time.monotonic() + 60)
        print_outcomes(outcomes, len(ids))
        shown = show_a_hold(settings, env, client, sandbox, lambda: worker.poll() is None)
        return 0 if len(outcomes) == len(ids) and shown else 1
    finally:
        if ingest_process is not None:
            ingest_process.send_signal(signal.SIGTERM)
            ingest_process.wait(30)
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        sandbox.stop()
        shutil.rmtree(work, ignore_errors=True)
        for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            client.delete(key)
        client.close()
        if own_redis:
            own_redis.stop()
            shutil.rmtree(own_redis.directory, ignore_errors=True)


def wait_ready(settings: Settings, client: redis.Redis, worker: subprocess.Popen[bytes]) -> None:
    """Until the worker's /readyz answers 200 (Redis answers, the sandbox gave a token) and its
    processes poll the queue (a heartbeat in the namespace)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.poll() is None:
        try:
            url = f"http://127.0.0.1:{settings.metrics_port}/readyz"
            ready = httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready and no_worker_warning(client, settings) is None:
            return
        time.sleep(0.1)


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


def wait_outcomes(
    store: OutcomeStore, ids: list[str], worker: subprocess.Popen[bytes], deadline: float
) -> list[dict[str, Any]]:
    """The outcome records of `ids`, once all are in (or at the deadline, those that are)."""
    while True:
        found = [r for r in (store.contact(i) for i in ids) if r is not None]
        if len(found) == len(ids) or worker.poll() is not None or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def print_outcomes(outcomes: list[dict[str, Any]], expected: int) -> None:
    """Per template: calls that reached the person (pass) or not (fail), and why those failed."""
    calls: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    failed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for record in outcomes:
        template = record["batchKey"].rpartition(":")[0]
        outcome = record["outcome"]
        status = outcome.get("deliveryStatus", "other")
        calls[template][status] += 1
        if status != "pass":
            failed[template][outcome.get("endedReason", "-")] += 1
    print("\ncall outcomes per template (phone_call.ended webhooks, through levers-ingest):")
    print(f"{'template':<38} {'calls':>5} {'pass':>5} {'fail':>5}  why the failed calls ended")
    for template in sorted(calls):
        c = calls[template]
        why = ", ".join(
            f"{r} {n}" for r, n in sorted(failed[template].items(), key=lambda i: -i[1])
        )
        print(f"{template:<38} {sum(c.values()):>5} {c['pass']:>5} {c['fail']:>5}  {why}")
    print(f"{len(outcomes)} of {expected} calls reported ended (levers-admin contacts show ID)")


def start_ingest(
    env: dict[str, str], port: int, token: str, console_password: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """levers-ingest on `port`; with `console_password`, its console too, for the user
    CONSOLE_USER (who may see whole numbers: the demo's are made up)."""
    extra = {"LEVERS_INGEST_TOKENS": token, "LEVERS_LOG_LEVEL": "WARNING"}
    if console_password is not None:
        extra["LEVERS_CONSOLE_USERS"] = f"{CONSOLE_USER}:{hash_password(console_password)}"
        extra["LEVERS_CONSOLE_REVEAL_USERS"] = CONSOLE_USER
    process = subprocess.Popen(
        [sys.executable, "-m", "producers.ingest.cli", "--port", str(port)],
        env={**env, **extra},
    )
    return process, f"http://127.0.0.1:{port}"


def wait_ingest_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not _ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            print("levers demo: levers-ingest did not start; see its log above")
            return False
        time.sleep(0.1)
    return True


CONSOLE_USER = "operator"

SAMPLE_BODY = [
    {
        "numberToCall": "+966501234567",
        "firstName": "Sara",
        "aiSettingsTemplateId": TEMPLATES[1],
        "metadata": {"crm_id": "42"},
        "promptTags": {"amount": "120"},
    },
    {"numberToCall": "0501234568", "region": "SA", "firstName": "Omar"},
    {"numberToCall": "+96612341234"},
]


def serve_ingest(env: dict[str, str], sandbox: Sandbox, worker: subprocess.Popen[bytes]) -> int:
    """levers-ingest in front of the worker; prints what the sandbox receives until Ctrl-C."""
    token = secrets.token_urlsafe(24)
    # LEVERS_INGEST_PORT when set; else 8088 (what the docs show) unless something holds it.
    requested = env.get("LEVERS_INGEST_PORT")
    if requested:
        port = int(requested)
    else:
        port = DEMO_INGEST_PORT if port_is_free(DEMO_INGEST_PORT) else free_port()
    password = secrets.token_urlsafe(12)
    ingest, url = start_ingest(env, port, token, console_password=password)
    sandbox.webhooks.configure(url=url + WEBHOOK_PATH)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        if not wait_ingest_ready(url, ingest):
            return 1
        body = json.dumps(SAMPLE_BODY)
        print(
            f"\nlevers-ingest: {url} (OpenAPI: {url}/docs), token {token}\n"
            "Post contacts from another terminal, e.g.:\n\n"
            f"curl -sS {url}/v1/contacts -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' -H \"Idempotency-Key: $(date +%s%N)\" "
            f"-d '{body}'\n\n"
            f"The operator console: {url}/console (user {CONSOLE_USER}, password {password})\n"
            "Each request the sandbox receives is printed here. Ctrl-C stops everything.",
            flush=True,
        )
        shown = 0
        while not stop.is_set():
            requests = sandbox.accepted()
            for request in requests[shown:]:
                print_request(request.body)
            shown = len(requests)
            # Ctrl-C reaches the worker and levers-ingest too: only an exit before it is news.
            if not stop.wait(0.2) and (worker.poll() is not None or ingest.poll() is not None):
                print("levers demo: the worker or levers-ingest stopped; see the log above")
                return 1
        return 0
    finally:
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(30)


def print_request(body: dict[str, Any]) -> None:
    contacts = body["contacts"]
    key = batch_key(body.get("aiSettingsTemplateId"), body["updateExisting"])
    names = ", ".join(
        f"{mask_number(c['numberToCall'])} {c.get('firstName', '')}".strip() for c in contacts[:5]
    )
    more = f" and {len(contacts) - 5} more" if len(contacts) > 5 else ""
    count = f"{len(contacts)} contact{'' if len(contacts) == 1 else 's'}"
    print(f"sandbox received {count} for {key}: {names}{more}", flush=True)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.demo", description=ABOUT)
    parser.add_argument(
        "--ingest",
        action="store_true",
        help="serve levers-ingest and print a curl command instead of enqueueing samples",
    )
    return run(ingest=parser.parse_args(argv).ingest)


if __name__ == "__main__":
    raise SystemExit(main())
