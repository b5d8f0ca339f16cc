"""The whole path on real parts: producer -> Redis -> worker processes -> sandbox over HTTP."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from producers.api import Producer
from tests.integration.conftest import State
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.admin.status import status_report
from worker.contacts import RESERVED_METADATA_KEY
from worker.sandbox import Sandbox
from worker.settings import Settings

pytestmark = pytest.mark.integration

TEMPLATES = [
    None,
    "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10",
    "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5",
]
DOCUMENTED_BODY_FIELDS = {"contacts", "aiSettingsTemplateId", "updateExisting"}
DOCUMENTED_CONTACT_FIELDS = {"numberToCall", "firstName", "lastName", "metadata", "promptTags"}


def saudi_mobile(i: int) -> str:
    return f"+9665{i:08d}"


def sandbox_contacts(sandbox: Sandbox) -> int:
    return sum(len(r.body["contacts"]) for r in sandbox.accepted())


def test_thousand_contacts_over_six_keys_each_sent_exactly_once(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    settings: Settings,
    state: State,
) -> None:
    rows = []
    expected_key = {}
    for i in range(1000):
        template = TEMPLATES[i % 3]
        update = (i // 3) % 2 == 1
        number = saudi_mobile(10_000_000 + i)
        expected_key[number] = (template, update)
        rows.append(
            {
                "number": number,
                "first_name": f"Name{i}",
                "template_id": template,
                "update_existing": update,
                "metadata": {"crm_id": str(i)},
                "prompt_tags": {"amount": str(i)},
            }
        )
    result = producer.enqueue_contacts(rows)
    assert len(result.accepted) == 1000 and result.rejected == []

    worker = start_worker(processes=2, threads=4)
    wait_for(lambda: sandbox_contacts(sandbox) >= 1000, 60, what="1000 contacts at the sandbox")
    # Let a would-be duplicate arrive before counting: wait until nothing is in flight.
    wait_for(lambda: not state.in_flight(), 30, what="no batch in flight")

    seen: Counter[str] = Counter()
    for request in sandbox.accepted():
        body = request.body
        assert set(body) <= DOCUMENTED_BODY_FIELDS
        contacts = body["contacts"]
        assert 1 <= len(contacts) <= settings.batch_max_size
        key = (body.get("aiSettingsTemplateId"), body["updateExisting"])
        for entry in contacts:
            assert set(entry) <= DOCUMENTED_CONTACT_FIELDS
            number = entry["numberToCall"]
            seen[number] += 1
            assert expected_key[number] == key, "a contact was sent under another batch key"
            index = int(entry["metadata"]["crm_id"])
            assert entry["promptTags"] == {"amount": str(index)}
            correlation = entry["metadata"][RESERVED_METADATA_KEY]
            assert set(correlation) == {"batch_id", "contact_id", "index", "at"}
            assert correlation["contact_id"] == result.accepted[index][1]
    assert set(seen) == set(expected_key)
    assert max(seen.values()) == 1
    assert state.pending_status() == []
    assert state.stats()["contacts_sent"] == 1000

    # Both worker processes' metrics add up on the one endpoint.
    scrape = httpx.get(f"http://127.0.0.1:{settings.metrics_port}/metrics").text
    assert metric(scrape, 'levers_contacts_total{outcome="appended"}') == 1000
    assert metric(scrape, "levers_contacts_sent_total") == 1000
    assert metric(scrape, "levers_batch_size_contacts_sum") == 1000
    cut = metric(scrape, 'levers_batches_cut_total{trigger="size"}') + metric(
        scrape, 'levers_batches_cut_total{trigger="time"}'
    )
    assert cut == len(sandbox.accepted())
    assert metric(scrape, 'levers_requests_total{status_class="2xx"}') == cut

    report = status_report(settings)
    assert report["pending"] == [] and set(report["batches_in_flight"].values()) == {0}
    assert report["backlog_contacts"] == 0 and report["queued_contacts"] == 0
    assert report["totals"]["contacts_sent"] == 1000
    assert worker.stop() == 0


def metric(scrape: str, name: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for line in scrape.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_lone_contact_is_sent_within_max_wait_plus_half_a_second(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    settings: Settings,
) -> None:
    start_worker(processes=1, threads=2).wait_ready()
    readyz = f"http://127.0.0.1:{settings.metrics_port}/readyz"
    wait_for(lambda: httpx.get(readyz, timeout=5).status_code == 200, 20, what="ready")
    # The first contact meets a worker that has just started; the second one, sent once the
    # first is at the sandbox, meets consumers idle for a whole max wait, backed off to their
    # slowest poll as in production.
    for i in range(2):
        enqueued_at = time.time()
        producer.enqueue_contact(saudi_mobile(1 + i), first_name="Sara")
        requests = wait_for(
            lambda n=i + 1: len(got := sandbox.accepted()) >= n and got,
            settings.batch_max_wait_seconds + 5,
            what=f"request {i + 1}",
        )
        assert len(requests) == i + 1
        lateness = requests[i].received_at - enqueued_at
        assert settings.batch_max_wait_seconds <= lateness <= settings.batch_max_wait_seconds + 0.5


def test_overdue_batch_of_a_killed_worker_is_cut_by_a_new_worker_within_a_second(
    sandbox: Sandbox,
    producer: Producer,
    start_worker: Callable[..., WorkerProcess],
    state: State,
) -> None:
    first = start_worker(processes=2, threads=2)
    first.wait_ready()
    producer.enqueue_contact(saudi_mobile(2))
    wait_for(state.pending_status, 10, what="the contact to be appended")
    first.kill()
    # Nobody is alive to cut it: it becomes overdue and stays pending.
    wait_for(state.due_keys, 10, what="the batch to be overdue")
    assert sandbox.accepted() == []
    assert state.pending_status()[0].pending == 1

    second = start_worker(processes=1, threads=2)
    ready = second.wait_ready()
    [request] = wait_for(sandbox.accepted, 10, what="the overdue batch at the sandbox")
    assert request.body["contacts"][0]["numberToCall"] == saudi_mobile(2)
    assert request.received_at - ready <= 1.0
