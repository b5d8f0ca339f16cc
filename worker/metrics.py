"""Prometheus metrics of the worker, created against an explicit registry.

In a worker process `PROMETHEUS_MULTIPROC_DIR` is set (by `levers-worker`, before any
prometheus_client import) so every process writes its values to files in one directory and the
supervisor's endpoint adds them up. Labels stay bounded: outcome, reason, trigger, status class;
never a phone number or a template id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def status_class(status: int | None) -> str:
    if status is None:
        return "error"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.contacts = Counter(
            "levers_contacts",
            "Contact messages handled by the aggregator, by outcome "
            "(appended, merged, duplicate, redelivered, rejected).",
            ["outcome"],
            registry=r,
        )
        self.rejected = Counter(
            "levers_contacts_rejected",
            "Contacts rejected by validation, by reason.",
            ["reason"],
            registry=r,
        )
        self.batches_cut = Counter(
            "levers_batches_cut", "Batches cut, by trigger (size, time).", ["trigger"], registry=r
        )
        self.batch_size = Histogram(
            "levers_batch_size_contacts",
            "Contacts per cut batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "levers_requests",
            "Bulk requests to Levers, by status class (2xx, 4xx, 429, 5xx, error).",
            ["status_class"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "levers_request_duration_seconds",
            "Latency of bulk requests to Levers.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.contacts_sent = Counter(
            "levers_contacts_sent", "Contacts in requests Levers accepted.", registry=r
        )
        self.dead_letters = Counter(
            "levers_dead_letters",
            "Contacts moved to dead letters, by reason.",
            ["reason"],
            registry=r,
        )
        self.retries = Counter(
            "levers_send_retries",
            "Send attempts scheduled again, by reason.",
            ["reason"],
            registry=r,
        )
        self.contact_wait = Histogram(
            "levers_contact_wait_seconds",
            "From a contact's append to the start of the request that carries it.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pauses = Counter(
            "levers_rate_limit_pauses", "429 answers that paused every sender.", registry=r
        )
        self.token_refreshes = Counter(
            "levers_token_refreshes", "JWTs obtained from the auth endpoint.", registry=r
        )
        self.released = Counter(
            "levers_contacts_released",
            "Held contacts released into an open batch when their time came.",
            registry=r,
        )
        self.held = Counter(
            "levers_contacts_held",
            "Contacts held when accepted, by reason (window_closed, not_before, "
            "unknown_time_zone, no_window_for_country).",
            ["reason"],
            registry=r,
        )
        self.capped = Counter(
            "levers_contacts_capped",
            "Contacts found over a frequency cap when their batch was about to be sent, by the "
            "cap that decided it (scope every_template or template; cap '1 per 1d', 'gap 4h').",
            ["scope", "cap"],
            registry=r,
        )
        self.held_at_send = Counter(
            "levers_contacts_held_at_send",
            "Contacts taken out of a batch right before its request because their window "
            "had closed (back on hold).",
            registry=r,
        )
        self.expired = Counter(
            "levers_contacts_expired",
            "Contacts dead-lettered as expired: their expire_at came before they could be called.",
            registry=r,
        )
        self.send_errors = Counter(
            "levers_send_errors",
            "Send attempts that failed inside the worker (Redis unavailable, a bug); the batch "
            "is tried again when its lease ends.",
            registry=r,
        )
        self.token_failures = Counter(
            "levers_token_failures", "Failed attempts to obtain a JWT.", registry=r
        )
        # livemin: the endpoint shows 0 while any live worker process cannot reach Redis.
        self.redis_up = Gauge(
            "levers_redis_up",
            "1 while this worker process reaches Redis, 0 during an outage.",
            multiprocess_mode="livemin",
            registry=r,
        )
        self.replication_shortfalls = Counter(
            "levers_redis_replication_shortfalls",
            "Writes that fewer replicas than LEVERS_REDIS_MIN_REPLICAS confirmed in time, by "
            "operation (append: the message is tried again; begin: the batch was not sent; "
            "finish: the outcome stands, a failover now could lose it).",
            ["operation"],
            registry=r,
        )
        self.rate_wait = Histogram(
            "levers_rate_limit_wait_seconds",
            "Time a send waited for the global pacer and the in-flight cap.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
