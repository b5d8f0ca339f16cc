"""One worker process: a thread pool per queue (contacts, batches, outcomes, callbacks) plus the
flusher thread.

Started by `levers-worker` (once per `--processes`), with `PROMETHEUS_MULTIPROC_DIR` already set
by the supervisor. SIGTERM stops it gracefully: consumers stop taking messages, messages in
progress finish, pending contacts stay in Redis for the other replicas.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import uuid
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware.prometheus import Prometheus

from worker import logs, redis_health
from worker.actors import declare_actors, declare_outcome_actors
from worker.broker import (
    BATCHES_QUEUE,
    CALLBACKS_QUEUE,
    CONTACTS_QUEUE,
    OUTCOMES_QUEUE,
    ReconnectWatch,
    build_broker,
)
from worker.connection import describe
from worker.metrics import Metrics
from worker.redis_health import RedisHealth
from worker.runtime import Runtime
from worker.settings import Settings, settings_or_exit

log = logging.getLogger("levers.process")

OUTCOME_THREADS = 2
CALLBACK_THREADS = 2


def new_broker_identity(broker: RedisBroker) -> None:
    """After Redis was unreachable, or a new primary took over, fetch under a new broker id.

    A message whose ack (or retry) failed during the outage stays in Redis in this process's
    set of unacknowledged messages, and dramatiq gives such messages back only for a broker id
    whose heartbeat stopped. Switching ids lets the old one's heartbeat lapse, so dramatiq's own
    maintenance requeues everything it held after LEVERS_HEARTBEAT_TIMEOUT_MS. Messages still
    being processed may then run twice, which the actors are built for.
    """
    old, broker.broker_id = broker.broker_id, str(uuid.uuid4())
    # Debug only: the outage itself is said once by RedisHealth, and every connection that
    # reconnects after it may bring one of these.
    log.debug("new broker id after a reconnect", extra={"old": old, "new": broker.broker_id})


class HealthWatch(ReconnectWatch):
    """The reconnect watch that also tells `health` when a connection succeeds again."""

    def __init__(self, health: RedisHealth) -> None:
        super().__init__()
        self.health = health

    def __call__(self, connection: Any) -> None:
        super().__call__(connection)
        self.health.succeeded()


def run(
    settings: Settings, threads: int, send_threads: int, *, dramatiq_metrics: bool = True
) -> int:
    middleware = [Prometheus()] if dramatiq_metrics else []
    metrics = Metrics()
    # The flusher probes Redis with backoff during an outage; dramatiq's own records about it
    # are held back by the filter, so an outage is two lines, not a traceback per attempt.
    health = RedisHealth(
        describe(settings), on_change=lambda up: metrics.redis_up.set(1 if up else 0)
    )
    redis_health.install(health)
    watch = HealthWatch(health)
    broker = build_broker(settings, middleware=middleware, watch=watch)
    runtime = Runtime.build(settings, broker, metrics)
    runtime.flusher.on_reconnect = lambda: new_broker_identity(broker)
    runtime.flusher.reconnected = watch.take
    runtime.flusher.health = health
    declare_actors(runtime)
    declare_outcome_actors(runtime)
    broker.emit_after("process_boot")

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    # Two thread pools: a sender waiting for its rate-limit slot must never leave contacts
    # waiting to be appended (and so to be cut on time) for lack of a free thread.
    workers = [
        dramatiq.Worker(
            broker,
            queues={queue},
            worker_threads=count,
            worker_timeout=settings.worker_timeout_ms,
        )
        for queue, count in (
            (CONTACTS_QUEUE, threads),
            (BATCHES_QUEUE, send_threads),
            # Outcomes and callbacks have pools of their own: a slow producer endpoint never
            # holds up recording outcomes, and neither ever holds up contacts or sends.
            (OUTCOMES_QUEUE, OUTCOME_THREADS),
            (CALLBACKS_QUEUE, CALLBACK_THREADS),
        )
    ]
    # The sender pool keeps dramatiq's default (2 x threads): a send token held by a dead
    # process only waits, while other tokens send its batches (see pick.lua).
    workers[0].queue_prefetch = settings.contacts_prefetch
    # Each dramatiq Worker adds a middleware of its own to the broker; with several, dramatiq warns
    # that a middleware type was added twice, which here is intended.
    broker_log = logging.getLogger("dramatiq.broker.RedisBroker")
    level = broker_log.level
    broker_log.setLevel(logging.ERROR)
    try:
        for worker in workers:
            worker.start()
    finally:
        broker_log.setLevel(level)
    runtime.flusher.start()
    log.info("worker process started", extra={"threads": threads, "send_threads": send_threads})
    stop.wait()
    log.info("worker process stopping")
    runtime.flusher.stop()
    for worker in workers:
        worker.stop()
    broker.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="levers-worker-process")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--send-threads", type=int, default=8)
    parser.add_argument("--no-dramatiq-metrics", action="store_true")
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    logs.configure(settings.log_level, settings.log_format)
    return run(
        settings, args.threads, args.send_threads, dramatiq_metrics=not args.no_dramatiq_metrics
    )


if __name__ == "__main__":
    raise SystemExit(main())
