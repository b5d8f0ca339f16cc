"""Everything a worker process runs, built from settings in one place.

The value objects each part takes (`BufferConfig`, `OutboxConfig`, `Durability`, `Limits`,
`RetryPolicy`, `Timeouts`) are made from `Settings` here and nowhere else; tests build the
parts directly with the values they need.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from dramatiq.brokers.redis import RedisBroker

from worker.aggregator import Aggregator, Flusher
from worker.backlog import QueuedContacts
from worker.buffers import BufferConfig, Buffers
from worker.deadletters import DeadLetters
from worker.durability import Durability
from worker.eligibility import Eligibility
from worker.holds import Holds
from worker.keys import Keys
from worker.last_error import LastError
from worker.levers import LeversClient, Timeouts
from worker.metrics import Metrics
from worker.outbox import Outbox, OutboxConfig
from worker.outcome_metrics import OutcomeMetrics
from worker.outcome_runtime import OutcomeRuntime
from worker.policy import CallingPolicy, policy_from_settings
from worker.ratelimit import Limits, Pacer, Slots
from worker.rejects import Rejects
from worker.scripting import Clock
from worker.sender import RetryPolicy, Sender
from worker.settings import Settings
from worker.suppression import Suppression


def buffer_config(settings: Settings) -> BufferConfig:
    return BufferConfig(
        batch_max_size=settings.batch_max_size,
        batch_max_wait_seconds=settings.batch_max_wait_seconds,
        dedupe_window_seconds=settings.dedupe_window_seconds,
    )


def outbox_config(settings: Settings) -> OutboxConfig:
    return OutboxConfig(
        send_lease_seconds=settings.send_lease_seconds,
        batch_retention_seconds=settings.batch_retention_seconds,
    )


def durability(settings: Settings, metrics: Metrics | None = None) -> Durability:
    """LEVERS_REDIS_MIN_REPLICAS; each shortfall counted in `metrics` when given."""
    return Durability(
        settings.redis_min_replicas,
        settings.redis_wait_timeout_ms,
        on_shortfall=None
        if metrics is None
        else lambda exc: metrics.replication_shortfalls.labels(exc.operation).inc(),
    )


def limits(settings: Settings) -> Limits:
    return Limits(
        settings.max_requests_per_second,
        settings.max_contacts_per_minute,
        settings.rate_jitter_ms,
        adaptive=settings.adaptive_rate,
        adaptive_floor=min(
            settings.adaptive_min_requests_per_second, settings.max_requests_per_second
        ),
        adaptive_step=settings.adaptive_step,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_retries=settings.max_send_retries, max_elapsed_seconds=settings.max_retry_seconds
    )


def timeouts(settings: Settings) -> Timeouts:
    return Timeouts(settings.connect_timeout_seconds, settings.request_timeout_seconds)


def slot_lease_seconds(settings: Settings) -> float:
    """A holder that dies frees its in-flight slot once its request could no longer be running."""
    return settings.connect_timeout_seconds + settings.request_timeout_seconds + 5


@dataclass
class Runtime:
    """The objects one worker process runs (tests build the parts they need directly)."""

    settings: Settings
    broker: RedisBroker
    buffers: Buffers
    outbox: Outbox
    aggregator: Aggregator
    sender: Sender
    flusher: Flusher
    metrics: Metrics
    outcomes: OutcomeRuntime

    @classmethod
    def build(
        cls,
        settings: Settings,
        broker: RedisBroker,
        metrics: Metrics,
        *,
        client: LeversClient | None = None,
        clock: Clock | None = None,
        policy: CallingPolicy | None = None,
    ) -> Runtime:
        """`policy` defaults to the one the settings name (LEVERS_POLICY_FILE or
        LEVERS_DEFAULT_WINDOW); a bad policy file raises PolicyError."""
        redis_client: redis.Redis = broker.client
        keys = Keys(settings.namespace)
        policy = policy or policy_from_settings(settings)
        eligibility = Eligibility(policy)
        eligibility.warm()
        outcomes = OutcomeRuntime.build(settings, broker, policy, OutcomeMetrics(), clock=clock)
        replicas = durability(settings, metrics)
        buffers = Buffers(redis_client, keys, buffer_config(settings), clock, replicas)
        holds = Holds(redis_client, keys, buffer_config(settings), clock)
        outbox = Outbox(redis_client, keys, outbox_config(settings), broker, clock, replicas)
        dead = DeadLetters(redis_client, keys, clock)
        suppression = Suppression(redis_client, keys, clock)
        levers = client or LeversClient(
            settings.base_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            api_token=settings.api_token,
            timeouts=timeouts(settings),
            on_token=lambda ok: (metrics.token_refreshes if ok else metrics.token_failures).inc(),
        )
        sender = Sender(
            outbox,
            Pacer(redis_client, keys, limits(settings), clock),
            levers,
            metrics,
            retry_policy(settings),
            slots=Slots(
                redis_client,
                keys,
                settings.max_in_flight,
                lease_seconds=slot_lease_seconds(settings),
                clock=clock,
            ),
            resend_unknown=settings.resend_unknown_at_once,
            eligibility=eligibility,
            last_error=LastError(redis_client, keys, clock),
            ledger=outcomes.ledger,
        )
        aggregator = Aggregator(
            buffers,
            outbox,
            Rejects(redis_client, keys, clock=clock),
            QueuedContacts(redis_client, keys),
            metrics,
            settings.contact_rules,
            eligibility,
        )
        flusher = Flusher(
            buffers,
            outbox,
            metrics,
            holds,
            housekeeping=lambda: (
                dead.expire(settings.dead_letter_retention_seconds),
                suppression.expire(),
                outcomes.housekeeping(settings),
            ),
        )
        return cls(
            settings, broker, buffers, outbox, aggregator, sender, flusher, metrics, outcomes
        )
