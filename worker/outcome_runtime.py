"""Everything of call outcomes a worker process runs, built from settings and the policy.

`Runtime.build` (worker/runtime.py) builds this beside the pipeline: the actor's handler, the
callback sender, the unknown-outcome pass and the ledger the sender fills, and the housekeeping
the flusher runs every 10 s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from dramatiq.brokers.redis import RedisBroker

from worker.contacts import parse_batch_key
from worker.deadletters import DeadLetters
from worker.keys import Keys
from worker.notify import MAX_BACKOFF_SECONDS, CallbackDeadLetters, Callbacks, Notifier
from worker.outcome_handler import OutcomeHandler
from worker.outcome_metrics import OutcomeMetrics
from worker.outcomes import OutcomeStore
from worker.policy.policy import CallingPolicy
from worker.retries import Ledger, RetryScheduler
from worker.scripting import Clock
from worker.settings import Settings
from worker.unknowns import Unknowns


def callback_backoff_ms(settings: Settings, attempt: int, rng: random.Random) -> int:
    """Before attempt `attempt + 1`: the base doubled per attempt, with jitter, at most 1 h."""
    ceiling = min(MAX_BACKOFF_SECONDS, settings.callback_backoff_seconds * 2 ** (attempt - 1))
    return int(rng.uniform(ceiling / 2, ceiling) * 1000)


@dataclass
class OutcomeRuntime:
    handler: OutcomeHandler
    callbacks: Callbacks
    unknowns: Unknowns
    ledger: Ledger
    store: OutcomeStore
    callback_dead: CallbackDeadLetters
    metrics: OutcomeMetrics

    @classmethod
    def build(
        cls,
        settings: Settings,
        broker: RedisBroker,
        policy: CallingPolicy,
        metrics: OutcomeMetrics,
        *,
        clock: Clock | None = None,
        http: httpx.Client | None = None,
    ) -> OutcomeRuntime:
        # Imported here: the producer module imports the broker, which imports settings.
        from producers.api import Producer

        client: redis.Redis = broker.client
        keys = Keys(settings.namespace)
        retention = settings.outcome_retention_seconds
        store = OutcomeStore(client, keys, retention, settings.metrics_max_outcome_labels, clock)
        ledger = Ledger(
            client,
            keys,
            retention,
            lambda key: policy.rule_for(parse_batch_key(key)[0]).retries.enabled,
        )
        producer = Producer(settings, broker)
        retries = RetryScheduler(
            client,
            keys,
            producer,
            ledger,
            lambda template: policy.rule_for(template).retries,
            retention,
            clock,
        )
        handler = OutcomeHandler(
            store, retries, Notifier(client, keys, broker, retention), policy.rule_for, metrics
        )
        callback_dead = CallbackDeadLetters(client, keys, clock)
        timeout = settings.callback_timeout_seconds
        callbacks = Callbacks(
            settings.callback_secret,
            http or httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False),
            callback_dead,
            settings.callback_max_attempts,
        )
        dead = DeadLetters(client, keys, clock)
        unknowns = Unknowns(
            client,
            keys,
            dead,
            lambda records: dead.replay(records, producer.enqueue_contacts),
            mode=settings.resend_unknown,
            grace_seconds=settings.outcome_grace_seconds,
            clock=clock,
        )
        return cls(handler, callbacks, unknowns, ledger, store, callback_dead, metrics)

    def housekeeping(self, settings: Settings) -> dict[str, Any]:
        """Settle or resend unknown outcomes; expire what has outlived its retention."""
        done = self.unknowns.run()
        if done.resent:
            self.metrics.unknown.labels("resent").inc(len(done.resent))
        if done.settled:
            self.metrics.unknown.labels("settled").inc(len(done.settled))
        self.store.expire()
        self.callback_dead.expire(settings.dead_letter_retention_seconds)
        return {"settled": len(done.settled), "resent": len(done.resent)}
