"""One worker process: dramatiq consumer threads for both actors plus the flusher thread.

Started by `levers-worker` (once per `--processes`), with `PROMETHEUS_MULTIPROC_DIR` already set
by the supervisor. SIGTERM stops it gracefully: consumers stop taking messages, messages in
progress finish, pending contacts stay in Redis for the other replicas.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

import dramatiq
from dramatiq.middleware.prometheus import Prometheus

from worker import logs
from worker.actors import Runtime, declare_actors
from worker.broker import build_broker
from worker.errors import LeversBatcherError
from worker.metrics import Metrics
from worker.settings import Settings

log = logging.getLogger("levers.process")


def run(settings: Settings, threads: int, *, dramatiq_metrics: bool = True) -> int:
    middleware = [Prometheus()] if dramatiq_metrics else []
    broker = build_broker(settings, middleware=middleware)
    runtime = Runtime.build(settings, broker, Metrics())
    declare_actors(runtime)
    broker.emit_after("process_boot")

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    worker = dramatiq.Worker(
        broker, worker_threads=threads, worker_timeout=settings.worker_timeout_ms
    )
    worker.start()
    runtime.flusher.start()
    log.info("worker process started", extra={"threads": threads})
    stop.wait()
    log.info("worker process stopping")
    runtime.flusher.stop()
    worker.stop()
    broker.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="levers-worker-process")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--no-dramatiq-metrics", action="store_true")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except LeversBatcherError as exc:
        print(exc)
        return 2
    logs.configure(settings.log_level)
    return run(settings, args.threads, dramatiq_metrics=not args.no_dramatiq_metrics)


if __name__ == "__main__":
    raise SystemExit(main())
