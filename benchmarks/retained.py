"""Redis memory that stays behind once contacts are sent: the figure for sizing `maxmemory`.

A contact that waits costs the bytes the suite's memory run measures (`benchmarks.suite`). One
that was sent still leaves, for a while, its dedupe marker (LEVERS_DEDUPE_WINDOW_SECONDS), the
marker that makes a redelivered message a no-op, and its batch's record
(LEVERS_BATCH_RETENTION_SECONDS). This sends `--contacts` contacts through a real worker and the
sandbox (batches of 100) and prints what remains, per contact and per batch, by kind of key.

    python -m benchmarks.retained [--contacts 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from benchmarks.suite import (
    CLIENT_ID,
    CLIENT_SECRET,
    FAST,
    KEYS,
    MESSAGES_KEY,
    NAMESPACE,
    Bench,
    contact_rows,
    key_bytes,
    keyspace_tables,
)
from tests.servers import RedisServer
from tests.workers import WorkerProcess
from worker.sandbox import Sandbox, SandboxConfig

TEMPLATES = 4


def wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def measure(bench: Bench, n: int) -> dict[str, float]:
    bench.reset()
    empty = bench.used_memory()
    tables_empty = keyspace_tables(bench.client)
    bench.enqueue(contact_rows(n, TEMPLATES))
    worker: WorkerProcess = bench.start_levers(2, 8, dict(FAST), "retained")
    try:

        def all_sent() -> bool:
            sent = int(bench.client.hget(KEYS.stats, "contacts_sent") or 0)
            return sent >= n and bench.client.zcard(KEYS.inflight) == 0

        wait(all_sent, max(120.0, n / 200), "every contact to be sent")
    finally:
        worker.ensure_dead()
    # The workers' connections (and their buffers in Redis) must be gone before measuring.
    wait(
        lambda: int(bench.client.info("clients")["connected_clients"]) <= 1,
        10,
        "worker connections to close",
    )
    left = bench.used_memory()
    batches = key_bytes(bench.client, KEYS.batch("*"))
    dedupe = key_bytes(bench.client, f"{NAMESPACE}:dedupe:*")
    messages = key_bytes(bench.client, KEYS.message("*"))
    pending = key_bytes(bench.client, KEYS.pending("*"))
    if pending[0] or bench.client.hlen(MESSAGES_KEY):
        raise SystemExit("contacts still pending or queued: not everything was sent")
    return {
        "contacts": n,
        "batches": batches[0],
        "bytes_per_sent_contact": (left - empty) / n,
        "dedupe_bytes_per_contact": dedupe[1] / n,
        "message_marker_bytes_per_contact": messages[1] / n,
        "message_markers": messages[0],
        "batch_record_bytes": batches[1] / max(1, batches[0]),
        "keyspace_tables_bytes_per_contact": (keyspace_tables(bench.client) - tables_empty) / n,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retained", description=__doc__)
    parser.add_argument("--contacts", type=int, default=20_000)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="levers-retained-"))
    server = RedisServer(work / "redis")
    sandbox = Sandbox(SandboxConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET))
    server.start()
    sandbox.start()
    bench = Bench(work, server, sandbox, redis.Redis.from_url(server.url))
    try:
        figures = measure(bench, args.contacts)
    finally:
        bench.stop_all()
        bench.client.close()
        sandbox.stop()
        server.stop()
    print(f"{figures['contacts']:,} contacts sent in {figures['batches']:,} batches:")
    rows = [
        ("Redis bytes left per sent contact", "bytes_per_sent_contact"),
        ("  dedupe markers", "dedupe_bytes_per_contact"),
        ("  message markers", "message_marker_bytes_per_contact"),
        ("  keyspace tables", "keyspace_tables_bytes_per_contact"),
        ("bytes per finished batch record", "batch_record_bytes"),
    ]
    for label, key in rows:
        print(f"  {label:<36} {figures[key]:8.0f}")
    print(f"  ({figures['message_markers']:,} message markers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
