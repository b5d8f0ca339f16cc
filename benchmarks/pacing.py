"""Pacing figures: how close the shared rate limiter runs to its limit, and never over it.

    python -m benchmarks.pacing [--limit 5] [--processes 3] [--seconds 30] [--adaptive]

Starts its own redis-server and sandbox, a backlog of batches, and N worker processes; then
prints, from the times the sandbox received requests:

* max window / limit: the most requests in any 1 s window divided by the limit (goal <= 1.00);
* achieved / limit: requests per second over the run divided by the limit (goal >= 0.95).

With --adaptive the sandbox enforces the limit itself (429 + Retry-After) and the worker is
told only that the limit is below 4x; it also prints the share of 429s after the first 30 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

from producers.api import Producer
from tests.integration.test_pacing import max_in_window
from tests.servers import RedisServer
from tests.workers import WorkerProcess
from worker.sandbox import Sandbox, SandboxConfig
from worker.settings import Settings


def run(
    limit: float, processes: int, seconds: float, adaptive: bool, jitter_ms: float = 40
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="levers-pacing-"))
    server = RedisServer(work / "redis").start()
    sandbox = Sandbox(SandboxConfig(client_id="bench", client_secret="bench-secret")).start()
    if adaptive:
        sandbox.configure(rate_limit_per_second=limit, retry_after_seconds=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVERS_")}
    env.update(
        {
            "REDIS_URL": server.url,
            "LEVERS_NAMESPACE": f"pace-{uuid.uuid4().hex[:6]}",
            "LEVERS_BASE_URL": sandbox.url,
            "LEVERS_CLIENT_ID": "bench",
            "LEVERS_CLIENT_SECRET": "bench-secret",
            "LEVERS_DEFAULT_WINDOW": "always",  # measure sending, not calling hours
            "LEVERS_BATCH_MAX_SIZE": "10",
            "LEVERS_MAX_REQUESTS_PER_SECOND": str(limit * 4 if adaptive else limit),
            "LEVERS_ADAPTIVE_RATE": "true" if adaptive else "false",
            "LEVERS_METRICS_PORT": "0",
            "LEVERS_RATE_JITTER_MS": str(jitter_ms),
        }
    )
    workers: list[WorkerProcess] = []
    try:
        batches = int(limit * (seconds + 10)) + 20
        producer = Producer(Settings.from_env(env))
        producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(batches * 10)])
        producer.close()
        for i in range(processes):
            worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(work / f"m{i}")}
            workers.append(WorkerProcess(worker_env, work / f"w{i}.log", 1, 4).start())
        while not sandbox.stats().answers:
            time.sleep(0.05)
        first = sandbox.stats().answers[0].received_at
        while time.time() < first + seconds:
            time.sleep(0.2)
        answers = [a for a in sandbox.stats().answers if a.received_at <= first + seconds]
    finally:
        for worker in workers:
            worker.ensure_dead()
        sandbox.stop()
        server.stop()
    times = [a.received_at for a in answers if a.status != 429]
    result = {
        "max_window_over_limit": max_in_window(times, 1.0) / limit,
        "achieved_over_limit": (len(times) - 1) / (max(times) - min(times)) / limit,
    }
    if adaptive:
        late = [a for a in answers if a.received_at >= first + 30]
        result["share_429_after_30s"] = sum(a.status == 429 for a in late) / max(1, len(late))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--adaptive", action="store_true")
    parser.add_argument("--jitter-ms", type=float, default=40, help="LEVERS_RATE_JITTER_MS")
    args = parser.parse_args()
    figures = run(args.limit, args.processes, args.seconds, args.adaptive, args.jitter_ms)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"limit {args.limit:g}/s, {args.processes} processes x 4 threads, {args.seconds:g} s"
        + f", jitter margin {args.jitter_ms:g} ms"
        + (", adaptive" if args.adaptive else "")
    )
    for name, value in figures.items():
        print(f"  {name:<24} {value:.3f}")


if __name__ == "__main__":
    main()
