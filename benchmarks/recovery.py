"""How long a SIGKILLed worker holds messages it had fetched, before another worker gets them.

dramatiq gives a dead worker's unacknowledged messages back only after its heartbeat timeout,
and only when some live process runs broker maintenance (on a random fraction of its Redis
commands). This measures that delay end to end: worker A is killed while both its threads
wait on slow requests, so the contact messages it prefetched are fetched but not acknowledged;
worker B starts at once; we time from the kill until every contact has reached the sandbox.

    python -m benchmarks.recovery [--runs 3] [--cap 240]

Cases: dramatiq's defaults (heartbeat 60 s, maintenance on 1 in 1000 commands, idle poll up to
1 s) and ours (LEVERS_HEARTBEAT_TIMEOUT_MS, LEVERS_MAINTENANCE_CHANCE, LEVERS_WORKER_TIMEOUT_MS).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis

from producers.api import Producer
from tests.servers import RedisServer, free_port
from tests.workers import WorkerProcess
from worker.backlog import read_backlog
from worker.keys import Keys
from worker.sandbox import Sandbox, SandboxConfig
from worker.settings import Settings

CASES = {
    "dramatiq defaults": {
        "LEVERS_HEARTBEAT_TIMEOUT_MS": "60000",
        "LEVERS_MAINTENANCE_CHANCE": "1000",
        "LEVERS_WORKER_TIMEOUT_MS": "1000",
    },
    "levers-batcher defaults": {},
}


def one_run(redis_url: str, sandbox: Sandbox, case_env: dict[str, str], cap: float) -> float | None:
    work = Path(tempfile.mkdtemp(prefix="levers-recovery-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVERS_")}
    env.update(
        {
            "REDIS_URL": redis_url,
            "LEVERS_NAMESPACE": f"rec-{uuid.uuid4().hex[:6]}",
            "LEVERS_BASE_URL": sandbox.url,
            "LEVERS_CLIENT_ID": "bench",
            "LEVERS_CLIENT_SECRET": "bench-secret",
            "LEVERS_DEFAULT_WINDOW": "always",  # measure sending, not calling hours
            "LEVERS_BATCH_MAX_SIZE": "10",
            "LEVERS_MAX_REQUESTS_PER_SECOND": "100",
            "LEVERS_METRICS_PORT": "0",
            **case_env,
        }
    )
    settings = Settings.from_env(env)
    client = redis.Redis.from_url(redis_url)
    keys = Keys(settings.namespace)
    a = WorkerProcess({**env, "PROMETHEUS_MULTIPROC_DIR": str(work / "a")}, work / "a.log", 1, 2)
    b = WorkerProcess({**env, "PROMETHEUS_MULTIPROC_DIR": str(work / "b")}, work / "b.log", 1, 2)
    try:
        # A alone: slow answers keep both its threads busy sending, so the contact messages it
        # has prefetched wait in its memory, fetched but not acknowledged.
        sandbox.reset()
        sandbox.configure(latency_seconds=2.0)
        a.start()
        a.wait_ready()
        producer = Producer(settings)
        numbers = {f"+96655{i:07d}" for i in range(200)}
        producer.enqueue_contacts([{"number": n} for n in sorted(numbers)])
        producer.close()
        deadline = time.monotonic() + 30
        while read_backlog(client, keys).batches["sending"] < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("worker A never got busy")
            time.sleep(0.02)
        a.kill()
        killed = time.monotonic()
        sandbox.configure(latency_seconds=0.0)
        b.start()
        # Every contact must reach the sandbox, including those whose messages A held.
        while True:
            sent = {c["numberToCall"] for r in sandbox.accepted() for c in r.body["contacts"]}
            if sent >= numbers:
                return time.monotonic() - killed
            if time.monotonic() - killed > cap:
                return None
            time.sleep(0.05)
    finally:
        a.ensure_dead()
        b.ensure_dead()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cap", type=float, default=240.0, help="give up on a run after this, s")
    args = parser.parse_args()
    server = RedisServer(Path(tempfile.mkdtemp(prefix="levers-recovery-redis-"))).start()
    sandbox = Sandbox(
        SandboxConfig(client_id="bench", client_secret="bench-secret"), port=free_port()
    )
    sandbox.start()
    try:
        print(f"{'case':<26} {'held messages back after (s), per run':<40} median")
        for name, env in CASES.items():
            times = [one_run(server.url, sandbox, env, args.cap) for _ in range(args.runs)]
            shown = ", ".join(f"{t:.1f}" if t is not None else f">{args.cap:.0f}" for t in times)
            done = [t for t in times if t is not None]
            median = f"{statistics.median(done):.1f}" if len(done) == len(times) else "n/a"
            print(f"{name:<26} {shown:<40} {median}")
    finally:
        sandbox.stop()
        server.stop()


if __name__ == "__main__":
    main()
