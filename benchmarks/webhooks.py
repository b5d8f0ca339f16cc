"""Call-ended webhooks: deliveries verified and queued per second by one levers-ingest process,
and events recorded per second by one levers-worker process.

    python -m benchmarks.webhooks [--events 5000] [--connections 4]

Starts its own redis-server, one `levers-ingest` (uvicorn, one process) with a webhook secret,
and writes `--events / 100` batch records as the worker leaves them once sent. Phase 1 posts
one signed `phone_call.ended` delivery per contact (the payload Levers sends, transcription
and summary included, about 1.3 KB) from `--connections` keep-alive connections, signed before
the clock starts; every answer must be a 202. Phase 2 starts one `levers-worker` process (two
outcome threads, as in production) and times it from start to the outcomes queue drained and
every outcome recorded (its start-up included). No retry rules or callbacks: the recording
path. Prints deliveries/s with latency (p50, p99) and CPU per 1,000 for the ingest, events/s
and CPU per 1,000 for the worker.
"""

from __future__ import annotations

import argparse
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
import redis

from benchmarks.ingest import percentile
from benchmarks.procs import ProcessGroup, group_cpu_seconds
from tests.servers import RedisServer, free_port, wait_for
from worker.keys import Keys
from worker.sandbox_webhooks import sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BATCH = 100


def deliveries(count: int) -> tuple[list[tuple[bytes, dict[str, str]]], list[str]]:
    """Signed deliveries, one per contact of `count / BATCH` batches; and the batch ids."""
    batch_ids = [uuid.uuid4().hex for _ in range(count // BATCH)]
    out = []
    now = time.time()
    for i in range(count):
        batch_id = batch_ids[i // BATCH]
        payload = {
            "providerCallId": f"call_{uuid.uuid4().hex}",
            "numberFrom": "+966112345678",
            "numberTo": f"+9665{10_000_000 + i:08d}",
            "providerStatus": "completed",
            "deliveryStatus": "pass" if i % 4 else "fail",
            "duration": 61,
            "summary": "The customer agreed to pay the outstanding amount on Sunday. " * 3,
            "endedReason": "customer-ended-call" if i % 4 else "customer-did-not-answer",
            "callOutput": "interested",
            "callOutputReasoning": "The customer said yes when asked about the payment.",
            "sentimentOutput": "positive",
            "transcription": "AI: Hello, this is a reminder about your bill. Customer: Yes. " * 8,
            "recordingUrl": f"https://recordings.invalid/{uuid.uuid4().hex}.mp3",
            "metadata": {
                "requestMetadata": {
                    "crm_id": str(i),
                    "levers_batcher": {
                        "batch_id": batch_id,
                        "contact_id": f"c{i}",
                        "index": i % BATCH,
                        "at": int(now * 1000),
                    },
                }
            },
        }
        body = json.dumps(payload).encode()
        out.append((body, sign(SECRET, f"msg_{uuid.uuid4().hex}", now, body)))
    return out, batch_ids


def run(events: int, connections: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="levers-webhook-bench-"))
    redis_server = RedisServer(work / "redis").start()
    client = redis.Redis.from_url(redis_server.url)
    namespace = f"webhook-bench-{uuid.uuid4().hex[:6]}"
    keys = Keys(namespace)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEVERS_", "PROMETHEUS_"))}
    env.update(
        {
            "REDIS_URL": redis_server.url,
            "LEVERS_NAMESPACE": namespace,
            "LEVERS_INGEST_TOKENS": "bench-ingest-token-0123456789",
            "LEVERS_WEBHOOK_SECRET": SECRET,
            "LEVERS_API_TOKEN": "bench-token",
            "LEVERS_METRICS_PORT": str(free_port()),
            "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
            "LEVERS_LOG_LEVEL": "WARNING",
        }
    )
    prepared, batch_ids = deliveries(events)
    for batch_id in batch_ids:  # as finish.lua leaves a sent batch
        client.hset(
            keys.batch(batch_id), mapping={"key": "default:0", "size": BATCH, "state": "sent"}
        )
    port = free_port()
    ingest = ProcessGroup.python_module(
        "producers.ingest.cli", ["--port", str(port)], env, work / "ingest.log"
    ).start()
    url = f"http://127.0.0.1:{port}/v1/webhooks/levers"
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()

    def post(share: list[tuple[bytes, dict[str, str]]]) -> None:
        with httpx.Client(timeout=30) as http:
            for body, headers in share:
                started = time.perf_counter()
                status = http.post(url, content=body, headers=headers).status_code
                with lock:
                    latencies.append(time.perf_counter() - started)
                    statuses[status] += 1

    worker = None
    try:
        wait_for(lambda: _healthy(port), 30, what="levers-ingest")
        cpu_before = group_cpu_seconds(ingest.pid)
        threads = [
            threading.Thread(target=post, args=(prepared[c::connections],))
            for c in range(connections)
        ]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ingest_seconds = time.perf_counter() - began
        ingest_cpu = group_cpu_seconds(ingest.pid) - cpu_before
        worker = ProcessGroup.python_module(
            "worker.cli", ["--processes", "1", "--threads", "2"], env, work / "worker.log"
        ).start()
        began = time.perf_counter()
        wait_for(
            lambda: int(client.hget(keys.stats, "calls_ended") or 0) >= events,
            600,
            interval=0.05,
            what="every outcome recorded",
        )
        worker_seconds = time.perf_counter() - began
        worker_cpu = group_cpu_seconds(worker.pid)
    finally:
        ingest.kill()
        if worker is not None:
            worker.kill()
        redis_server.stop()
    return {
        "deliveries_per_second": events / ingest_seconds,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "ingest_cpu_per_1000": ingest_cpu / events * 1000,
        "events_per_second": events / worker_seconds,
        "worker_cpu_per_1000": worker_cpu / events * 1000,
        "statuses": statuses,  # type: ignore[dict-item]
    }


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    events = max(BATCH, args.events // BATCH * BATCH)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {events} deliveries, {args.connections} connections"
    )
    r = run(events, args.connections)
    print(
        f"levers-ingest: {r['deliveries_per_second']:,.0f} deliveries/s verified and queued, "
        f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"CPU {r['ingest_cpu_per_1000']:.3f} s per 1,000"
    )
    print(
        f"levers-worker (1 process): {r['events_per_second']:,.0f} events/s recorded "
        f"(start-up included), CPU {r['worker_cpu_per_1000']:.3f} s per 1,000"
    )
    print(f"answers: {dict(r['statuses'])}")  # type: ignore[call-overload]
    if set(r["statuses"]) != {202}:  # type: ignore[call-overload]
        raise SystemExit(1)


if __name__ == "__main__":
    main()
