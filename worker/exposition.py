"""The HTTP endpoint of `levers-worker`: /metrics, /healthz and /readyz on one port.

/metrics adds up the counters of every worker process on the host (multiprocess mode) and reads
the gauges that describe shared state from Redis at scrape time, so that every replica reports
the same truth however many there are. See docs/metrics.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from worker.backlog import read_backlog
from worker.broker import BATCHES_QUEUE, CONTACTS_QUEUE
from worker.buffers import Buffers, KeyStatus
from worker.holds import Holds
from worker.keys import Keys
from worker.outbox import IN_FLIGHT_STATES

log = logging.getLogger("levers.exposition")

QUEUES = (CONTACTS_QUEUE, f"{CONTACTS_QUEUE}.DQ", BATCHES_QUEUE, f"{BATCHES_QUEUE}.DQ")
FAILED_QUEUES = (f"{CONTACTS_QUEUE}.XQ", f"{BATCHES_QUEUE}.XQ")
OTHER = "other"


def fold_keys(statuses: list[KeyStatus], limit: int) -> list[KeyStatus]:
    """At most `limit` batch keys (the fullest), the rest added up under `other`."""
    ordered = sorted(statuses, key=lambda s: (-s.pending, s.batch_key))
    kept, rest = ordered[:limit], ordered[limit:]
    if rest:
        kept.append(
            KeyStatus(OTHER, sum(s.pending for s in rest), max(s.oldest_age_seconds for s in rest))
        )
    return kept


class RedisStateCollector:
    """Gauges read from Redis on every scrape (registered on the endpoint's registry only).

    Every figure but the per-key ones comes from counters the scripts keep, so a scrape costs
    the same with ten batches in flight or a hundred thousand."""

    def __init__(
        self, buffers: Buffers, holds: Holds, max_batch_keys: int, configured_rate: float
    ) -> None:
        self.buffers = buffers
        self.holds = holds
        self.keys: Keys = buffers.keys
        self.max_batch_keys = max_batch_keys
        self.configured_rate = configured_rate

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except redis.RedisError as exc:
            # A scrape must still answer: the absence of these series is the signal.
            log.warning("cannot read Redis for metrics", extra={"error": repr(exc)})

    def _collect(self) -> Iterator[Metric]:
        client = self.buffers.client
        pending = GaugeMetricFamily(
            "levers_pending_contacts", "Contacts waiting in an open batch.", labels=["batch_key"]
        )
        oldest = GaugeMetricFamily(
            "levers_pending_oldest_age_seconds",
            "Age of the oldest pending contact of the batch key.",
            labels=["batch_key"],
        )
        for status in fold_keys(self.buffers.pending_status(), self.max_batch_keys):
            pending.add_metric([status.batch_key], status.pending)
            oldest.add_metric([status.batch_key], status.oldest_age_seconds)
        yield pending
        yield oldest

        backlog = read_backlog(client, self.keys)
        yield GaugeMetricFamily(
            "levers_backlog_contacts",
            "Every contact accepted and not yet sent or dead-lettered (queued + pending + held + "
            "in flight): the number to scale workers on. Every replica reports the same value.",
            value=backlog.total,
        )
        waiting = GaugeMetricFamily(
            "levers_contacts_waiting",
            "Contacts not yet sent, by stage: queued (in the contacts queue), pending (in an "
            "open batch), held (waiting for their window, not_before or an operator), "
            "in_flight (in a cut batch).",
            labels=["stage"],
        )
        waiting.add_metric(["queued"], backlog.queued)
        waiting.add_metric(["pending"], backlog.pending)
        waiting.add_metric(["held"], backlog.held)
        waiting.add_metric(["in_flight"], sum(backlog.in_flight.values()))
        yield waiting
        held = GaugeMetricFamily(
            "levers_contacts_held_now",
            "Contacts held now, by reason (window_closed, not_before, unknown_time_zone, "
            "no_window_for_country, frequency_capped).",
            labels=["reason"],
        )
        for reason, count in self.holds.counts().items():
            held.add_metric([reason], count)
        yield held
        oldest_hold = self.holds.oldest_age()
        yield GaugeMetricFamily(
            "levers_held_oldest_age_seconds",
            "How long the oldest held contact has waited (0 when none is held).",
            value=oldest_hold or 0.0,
        )
        in_flight = GaugeMetricFamily(
            "levers_batches_in_flight", "Batches not yet sent or dead.", labels=["state"]
        )
        for state in IN_FLIGHT_STATES:
            in_flight.add_metric([state], backlog.batches[state])
        yield in_flight

        pipe = client.pipeline(transaction=False)
        pipe.zcard(self.keys.dead_index)
        pipe.pttl(self.keys.pause)
        pipe.hget(self.keys.adaptive, "rate")
        for queue in QUEUES:
            pipe.llen(f"{self.keys.dramatiq}:{queue}")
        for queue in FAILED_QUEUES:
            pipe.zcard(f"{self.keys.dramatiq}:{queue}")
        pipe.hkeys(self.keys.paused)
        pipe.hlen(self.keys.suppressed)
        held, pause_ms, adaptive_rate, *depths, paused, suppressed = pipe.execute()
        yield GaugeMetricFamily(
            "levers_paused_templates",
            "Templates an operator paused (a pause of everything counts as one).",
            value=len(paused),
        )
        yield GaugeMetricFamily(
            "levers_paused_everything",
            "1 while an operator has paused every template.",
            value=1 if b"*" in paused or "*" in paused else 0,
        )
        yield GaugeMetricFamily(
            "levers_suppressed_numbers", "Numbers on the do-not-call list.", value=suppressed
        )
        yield GaugeMetricFamily(
            "levers_dead_letters_held", "Dead letters waiting for an operator.", value=held
        )
        remaining = max(0, int(pause_ms)) / 1000
        yield GaugeMetricFamily(
            "levers_rate_limit_paused",
            "1 while a 429 pause is in force.",
            value=1 if remaining > 0 else 0,
        )
        yield GaugeMetricFamily(
            "levers_rate_limit_pause_remaining_seconds",
            "Time left of the current 429 pause.",
            value=remaining,
        )
        yield GaugeMetricFamily(
            "levers_request_rate_limit",
            "The request rate in force, requests/s (the adaptive rate in adaptive mode).",
            value=float(adaptive_rate) if adaptive_rate else self.configured_rate,
        )
        queues = GaugeMetricFamily(
            "levers_queue_messages",
            "Messages in dramatiq's queues (.DQ: waiting for a retry; .XQ: given up by "
            "dramatiq, which the actors never let happen, so anything here needs a look).",
            labels=["queue"],
        )
        for queue, depth in zip((*QUEUES, *FAILED_QUEUES), depths, strict=True):
            queues.add_metric([queue], depth)
        yield queues


class Endpoint:
    """Serves /metrics, /healthz and /readyz from a daemon thread."""

    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        healthy: Callable[[], bool],
        ready: Callable[[], str | None],
        host: str = "0.0.0.0",
    ) -> None:
        self.registry = registry
        self.healthy = healthy
        self.ready = ready
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> Endpoint:
        threading.Thread(
            target=self.server.serve_forever, name="levers-metrics", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(endpoint.registry), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = endpoint.healthy()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"unhealthy\n")
                elif path == "/readyz":
                    problem = endpoint.ready()
                    body = b"ready\n" if problem is None else f"not ready: {problem}\n".encode()
                    self._send(200 if problem is None else 503, body)
                else:
                    self._send(404, b"not found\n")

            def _send(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the log

        return Handler
