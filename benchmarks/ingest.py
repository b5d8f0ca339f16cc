"""HTTP ingest throughput: contacts accepted per second by one levers-ingest process.

    python -m benchmarks.ingest [--seconds 15] [--connections 4] [--size 100] [--keys]

Starts its own redis-server and one `levers-ingest` process (as its console script runs it:
uvicorn, one process), then posts lists of `--size` distinct valid contacts from
`--connections` client connections (one thread and one keep-alive connection each) for
`--seconds`, after a 2 s warm-up. `--keys` sends a fresh Idempotency-Key with every request
(the path production clients should take). Bodies are encoded before the clock starts and
reused in turn, so the client spends its CPU on HTTP only. No worker runs: the contacts stay in
the queue.

Prints accepted contacts/s, requests/s, latency per request (p50, p99, max), the ingest
process's CPU per 1,000 contacts, and any answer that was not a 202 with every contact accepted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from benchmarks.procs import ProcessGroup, group_cpu_seconds
from tests.servers import RedisServer, free_port, wait_for

TOKEN = "bench-ingest-token-0123456789"
WARMUP_SECONDS = 2.0


def bodies(count: int, size: int, offset: int) -> list[bytes]:
    """`count` JSON lists of `size` contacts with distinct valid Saudi mobile numbers."""
    out = []
    for r in range(count):
        start = offset + r * size
        rows = [
            {
                "numberToCall": f"+9665{start + i:08d}",
                "firstName": f"Customer {start + i}",
                "metadata": {"crm_id": str(start + i)},
                "promptTags": {"amount": str(100 + i % 50)},
            }
            for i in range(size)
        ]
        out.append(json.dumps(rows).encode())
    return out


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(seconds: float, connections: int, size: int, keys: bool) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="levers-ingest-bench-"))
    redis_server = RedisServer(work / "redis").start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVERS_")}
    env.update(
        {
            "REDIS_URL": redis_server.url,
            "LEVERS_NAMESPACE": f"ingest-bench-{uuid.uuid4().hex[:6]}",
            "LEVERS_INGEST_TOKENS": TOKEN,
            "LEVERS_LOG_LEVEL": "WARNING",
        }
    )
    ingest = ProcessGroup.python_module(
        "producers.ingest.cli", ["--port", str(port)], env, work / "ingest.log"
    ).start()
    url = f"http://127.0.0.1:{port}"
    # Bodies are reused in turn: the ingest does not deduplicate (the worker does, later).
    prepared = [bodies(200, size, 10_000_000 + c * 200 * size) for c in range(connections)]
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    measuring = threading.Event()
    stop = threading.Event()

    def client(own: list[bytes]) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            for body in itertools.cycle(own):
                if stop.is_set():
                    return
                extra = {"Idempotency-Key": uuid.uuid4().hex} if keys else {}
                started = time.perf_counter()
                answer = http.post("/v1/contacts", content=body, headers=extra)
                elapsed = time.perf_counter() - started
                ok = answer.status_code == 202 and answer.json()["accepted"] == size
                if measuring.is_set():
                    with lock:
                        latencies.append(elapsed)
                        statuses["202 all accepted" if ok else str(answer.status_code)] += 1

    try:
        wait_for(lambda: _healthy(url), 30, what="levers-ingest to answer /healthz")
        threads = [threading.Thread(target=client, args=(own,)) for own in prepared]
        for thread in threads:
            thread.start()
        time.sleep(WARMUP_SECONDS)
        cpu_before = group_cpu_seconds(ingest.pid)
        measuring.set()
        began = time.perf_counter()
        time.sleep(seconds)
        measuring.clear()
        elapsed = time.perf_counter() - began
        cpu = group_cpu_seconds(ingest.pid) - cpu_before
        stop.set()
        for thread in threads:
            thread.join(60)
        if not ingest.alive():
            raise RuntimeError("levers-ingest died:\n" + ingest.log_tail())
    finally:
        stop.set()
        ingest.kill()
        redis_server.stop()
    accepted = statuses["202 all accepted"] * size
    return {
        "contacts_per_second": accepted / elapsed,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "cpu_per_1000": cpu / max(accepted, 1) * 1000,
        "failed": sum(n for status, n in statuses.items() if status != "202 all accepted"),
        "statuses": statuses,  # type: ignore[dict-item]
    }


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--size", type=int, default=100, help="contacts per request")
    parser.add_argument("--keys", action="store_true", help="an Idempotency-Key per request")
    args = parser.parse_args()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; one levers-ingest process, "
        f"{args.connections} connections, lists of {args.size}, "
        f"{'an Idempotency-Key per request' if args.keys else 'no Idempotency-Key'}, "
        f"{args.seconds:g} s"
    )
    result = run(args.seconds, args.connections, args.size, args.keys)
    print(
        f"accepted {result['contacts_per_second']:,.0f} contacts/s "
        f"({result['requests_per_second']:,.1f} requests/s); latency per request "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"max {result['max_ms']:.1f} ms; ingest CPU {result['cpu_per_1000']:.3f} s "
        f"per 1,000 contacts"
    )
    print(f"answers: {dict(result['statuses'])}")  # type: ignore[call-overload]
    if result["failed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
