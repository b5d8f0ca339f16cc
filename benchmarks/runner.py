"""Run a comparison actor the way `levers-worker` runs its own: N processes, M threads each.

`benchmarks.noop` (the floor) and `benchmarks.naive` (one request per contact) use this so that
they differ from the real worker only in what their actor does:

* one supervisor process that spawns `--processes` child processes and waits for them;
* per child, one broker from `worker.broker.build_broker` (same namespace, heartbeat and
  maintenance settings) and one dramatiq `Worker` per queue (contacts and batches), each with
  `--threads` threads and the worker's own `LEVERS_WORKER_TIMEOUT_MS` idle poll, as
  `worker.process` does. dramatiq's CLI (`python -m dramatiq`) would poll an idle consumer up to
  1 s instead of 100 ms, which makes a floor that is not the same machinery.

dramatiq reads `dramatiq_queue_prefetch` from the environment, as in the real worker.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from worker.broker import AGGREGATE_ACTOR, BATCHES_QUEUE, CONTACTS_QUEUE, build_broker
from worker.settings import Settings


def broker_with(settings: Settings, actor: Callable[[Any], None]) -> RedisBroker:
    """Our broker with `actor` in the aggregate actor's place (same name, queue, retries)."""
    broker = build_broker(settings)
    dramatiq.actor(
        broker=broker, actor_name=AGGREGATE_ACTOR, queue_name=CONTACTS_QUEUE, max_retries=20
    )(actor)
    return broker


def serve(broker: RedisBroker, threads: int, worker_timeout_ms: int) -> int:
    """Consume both queues until SIGTERM or SIGINT."""
    broker.emit_after("process_boot")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workers = [
        dramatiq.Worker(
            broker, queues={queue}, worker_threads=threads, worker_timeout=worker_timeout_ms
        )
        for queue in (CONTACTS_QUEUE, BATCHES_QUEUE)
    ]
    for worker in workers:
        worker.start()
    stop.wait()
    for worker in workers:
        worker.stop()
    broker.close()
    return 0


def supervise(module: str, processes: int, threads: int) -> int:
    children = [
        subprocess.Popen(
            [sys.executable, "-m", module, "--child", "--threads", str(threads)],
        )
        for _ in range(processes)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    return max(child.wait() for child in children)


def main(module: str, build: Callable[[Settings], RedisBroker], argv: list[str] | None) -> int:
    """`python -m <module> --processes N --threads M`; `build` declares the actor."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.child:
        return supervise(module, max(1, args.processes), max(1, args.threads))
    settings = Settings.from_env()
    return serve(build(settings), max(1, args.threads), settings.worker_timeout_ms)
