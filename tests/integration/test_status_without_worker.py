"""Contacts enqueued while no worker runs are "still pending, visible in levers-admin status"
(G1): counted in contacts, not messages, by the real command, its --json, and the gauge every
worker's /metrics reports, then counted out once a worker has handled them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from producers.api import Producer
from tests.commands import no_traceback, run
from tests.integration.conftest import State
from tests.integration.test_pipeline import metric
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.buffers import Buffers
from worker.exposition import RedisStateCollector
from worker.holds import Holds
from worker.runtime import buffer_config
from worker.sandbox import Sandbox
from worker.settings import Settings

pytestmark = pytest.mark.integration

CHUNKED = 2_990  # through enqueue_contacts: 50 contacts per message, 60 messages
SINGLES = 10  # through enqueue_contact: one contact per message
TOTAL = CHUNKED + SINGLES


def scrape(settings: Settings, client: redis.Redis) -> str:
    """What a worker's /metrics would say of the shared state: the collector its endpoint
    registers, read here because no worker (and so no endpoint) runs."""
    registry = CollectorRegistry()
    keys = State(settings, client).keys
    config = buffer_config(settings)
    registry.register(
        RedisStateCollector(
            Buffers(client, keys, config),
            Holds(client, keys, config),
            settings.metrics_max_batch_keys,
            settings.max_requests_per_second,
        )
    )
    return generate_latest(registry).decode()


def test_contacts_queued_with_no_worker_show_in_status_and_metrics_as_contacts(
    sandbox: Sandbox,
    producer: Producer,
    settings: Settings,
    state: State,
    worker_env: dict[str, str],
    start_worker: Callable[..., WorkerProcess],
) -> None:
    result = producer.enqueue_contacts([{"number": f"+96655{i:07d}"} for i in range(CHUNKED)])
    assert len(result.accepted) == CHUNKED and result.rejected == []
    for i in range(SINGLES):
        producer.enqueue_contact(f"+96656{i:07d}")
    messages = CHUNKED // 50 + 1 + SINGLES

    text = run("levers-admin", ["status"], worker_env)
    as_json = run("levers-admin", ["status", "--json"], worker_env)
    no_traceback(text)
    no_traceback(as_json)
    assert text.returncode == as_json.returncode == 0, text.stderr + as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["queued_contacts"] == TOTAL
    assert report["backlog_contacts"] == TOTAL
    assert report["queue_messages"] == {"queue": messages, "delayed": 0, "failed": 0}
    assert report["pending_contacts"] == 0 and report["pending"] == []
    assert f"backlog: {TOTAL} contacts not yet sent" in text.stdout
    queued = re.search(
        r"^queued contacts \(not yet aggregated\): (\d+) \(messages: (\d+) in", text.stdout, re.M
    )
    assert queued is not None, text.stdout
    assert (int(queued[1]), int(queued[2])) == (TOTAL, messages)

    metrics = scrape(settings, state.client)
    assert metric(metrics, 'levers_contacts_waiting{stage="queued"}') == TOTAL
    assert metric(metrics, "levers_backlog_contacts") == TOTAL
    assert metric(metrics, 'levers_queue_messages{queue="levers.contacts"}') == messages

    # Counted out once handled, whatever dramatiq redelivers: the count is exact, not a guess.
    start_worker(processes=1, threads=4).wait_ready()
    wait_for(lambda: sandbox.stats().accepted_contacts == TOTAL, 60, what="every contact sent")
    wait_for(
        lambda: (
            json.loads(run("levers-admin", ["status", "--json"], worker_env).stdout)[
                "queued_contacts"
            ]
            == 0
        ),
        10,
        what="no queued contacts in status",
    )
    assert metric(scrape(settings, state.client), 'levers_contacts_waiting{stage="queued"}') == 0
