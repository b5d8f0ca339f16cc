"""The scaling rehearsal (deploy/README.md, "Operate"): replicas as Kubernetes runs them, on one
machine.

Three `levers-worker` supervisors, each started on its own (own process group, metrics port and
multiprocess directory, like three pods), and one `levers-ingest` share one Redis and the
sandbox. 5,000 contacts come in over HTTP; when the sandbox has about half of them, one
supervisor gets SIGTERM (a rolling update) and a new one starts in its place. Then:

* every contact reached the sandbox exactly once, and nothing was dead-lettered;
* every replica that ran took part: each worker process logged sent batches (JSON logs, with
  its pid and the batch id), the batches the four logged are exactly the requests the sandbox
  recorded (by the correlation id in every contact's metadata), and none was sent twice;
* `levers_backlog_contacts`, the gauge KEDA's query reads (`max` across replicas), agrees with
  the sandbox while contacts are on their way and drops to zero on every live replica.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

# levers-ingest as the ingest tests serve it (a real uvicorn on a free port, the same Redis and
# namespace as the workers): its fixtures, used here as they are.
from tests.integration.ingest.conftest import IngestServer, ingest, ingest_env, serve  # noqa: F401
from tests.integration.reconcile import settle
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.contacts import RESERVED_METADATA_KEY
from worker.deadletters import DeadLetters
from worker.keys import Keys
from worker.sandbox import Sandbox
from worker.settings import Settings

pytestmark = pytest.mark.integration

CONTACTS = 5000
LIST = 100  # contacts per HTTP request
FIRST_WAVE = 3000  # posted before the rolling update, the rest after it
BACKLOG = "levers_backlog_contacts"
# Replica settings: a small batch age, and a global request rate that spreads the 50 requests
# over a few seconds, so that the rolling update lands while batches are on the wire.
REPLICA = {
    "LEVERS_BATCH_MAX_WAIT_SECONDS": "0.2",
    "LEVERS_MAX_REQUESTS_PER_SECOND": "12",
    "LEVERS_LOG_FORMAT": "json",
}


def number(index: int) -> str:
    return f"+96650{index:07d}"


def post(http: httpx.Client, first: int, last: int) -> set[str]:
    """Post contacts `first` to `last` (excluded) in lists of LIST; the numbers accepted."""
    accepted: set[str] = set()
    for offset in range(first, last, LIST):
        rows = [
            {"numberToCall": number(i), "metadata": {"crm_id": str(i)}}
            for i in range(offset, min(offset + LIST, last))
        ]
        answer = http.post("/v1/contacts", json=rows)
        assert answer.status_code == 202, answer.text
        outcomes = answer.json()["contacts"]
        assert {o["status"] for o in outcomes} == {"accepted"}
        accepted.update(rows[o["index"]]["numberToCall"] for o in outcomes)
    return accepted


def sent_contacts(sandbox: Sandbox) -> int:
    return sum(len(request.body["contacts"]) for request in sandbox.accepted())


def backlog_gauge(worker: WorkerProcess) -> float | None:
    """`levers_backlog_contacts` as Prometheus scrapes it from this replica (None: absent)."""
    port = worker.env["LEVERS_METRICS_PORT"]
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == BACKLOG:
                return sample.value
    return None


def sent_batches(worker: WorkerProcess) -> list[tuple[int, str]]:
    """(pid, batch id) of every "batch sent" line of the replica's JSON log."""
    found = []
    for _, line in list(worker.lines):
        if not line.startswith("{"):
            continue
        entry: dict[str, Any] = json.loads(line)
        if entry.get("message") == "batch sent":
            found.append((int(entry["pid"]), str(entry["batch_id"])))
    return found


def process_pids(worker: WorkerProcess) -> set[int]:
    """The pids of the replica's worker processes, from their start lines."""
    return {
        int(json.loads(line)["pid"])
        for _, line in list(worker.lines)
        if line.startswith("{") and json.loads(line).get("message") == "worker process started"
    }


def request_batch_ids(sandbox: Sandbox) -> Counter[str]:
    """Requests the sandbox recorded, by the batch id the worker put in each contact."""
    ids: Counter[str] = Counter()
    for request in sandbox.accepted():
        batch = {c["metadata"][RESERVED_METADATA_KEY]["batch_id"] for c in request.body["contacts"]}
        assert len(batch) == 1, f"one request carried several batches: {batch}"
        ids.update(batch)
    return ids


def test_three_replicas_a_rolling_update_and_5000_contacts_over_http(
    sandbox: Sandbox,
    settings: Settings,
    redis_client: redis.Redis,
    start_worker: Callable[..., WorkerProcess],
    ingest: IngestServer,  # noqa: F811 (the fixture imported above)
) -> None:
    # Levers' own limit well above the workers' rate: the sandbox answers every request 201
    # after a little latency, as a busy API would.
    sandbox.configure(rate_limit_per_second=100.0, latency_seconds=0.05)
    replicas = [start_worker(processes=1, threads=2, **REPLICA) for _ in range(3)]
    for replica in replicas:
        replica.wait_ready()

    accepted: set[str] = set()
    with ingest.client() as http:
        accepted |= post(http, 0, FIRST_WAVE)
        wait_for(
            lambda: sent_contacts(sandbox) >= CONTACTS // 2,
            30,
            interval=0.01,
            what="half of the contacts at the sandbox",
        )
        # The number the autoscaler reads, between two readings of the sandbox: every contact
        # accepted and not yet recorded as sent. The sandbox records a request just before it
        # answers, so up to LEVERS_MAX_IN_FLIGHT requests may be at the sandbox and not yet
        # recorded by their worker.
        before = sent_contacts(sandbox)
        gauge = backlog_gauge(replicas[0])
        after = sent_contacts(sandbox)
        assert gauge is not None
        slack = settings.max_in_flight * settings.batch_max_size
        assert FIRST_WAVE - after <= gauge <= FIRST_WAVE - before + slack, (before, gauge, after)

        # The rolling update: SIGTERM to one replica while batches are on the wire, and its
        # replacement started at the same moment. (A Deployment waits for the new pod's
        # /readyz before it stops the old one; the order here, with one replica fewer for a
        # while, is the harder one.) The old replica finishes what it holds and exits 0.
        leaving = replicas[1]
        replacement = start_worker(processes=1, threads=2, **REPLICA)
        replicas.append(replacement)
        assert leaving.stop(timeout=30) == 0
        assert leaving.saw("worker process stopping")
        replacement.wait_ready()
        accepted |= post(http, FIRST_WAVE, CONTACTS)
    assert len(accepted) == CONTACTS

    dead = DeadLetters(redis_client, Keys(settings.namespace))
    reconciliation = settle(sandbox, dead, accepted, timeout=45)
    reconciliation.check(accepted)
    assert not reconciliation.dead, reconciliation.dead_reasons
    assert set(reconciliation.answered.values()) == {1}

    # Every replica took part, and the batches they logged are the requests the sandbox has.
    requests = request_batch_ids(sandbox)
    assert set(requests.values()) == {1}, "a batch reached the sandbox twice"
    logged: Counter[str] = Counter()
    for index, replica in enumerate(replicas):
        batches = sent_batches(replica)
        pids = process_pids(replica)
        assert len(pids) == 1, f"replica {index}: {pids}"
        assert {pid for pid, _ in batches} == pids, f"replica {index} sent no batch"
        logged.update(batch for _, batch in batches)
    assert logged == requests

    # The backlog drops to zero, and every live replica reports it (KEDA takes the max).
    live = [replica for replica in replicas if replica is not leaving]
    wait_for(
        lambda: all(backlog_gauge(replica) == 0 for replica in live),
        15,
        interval=0.1,
        what=f"{BACKLOG} 0 on every live replica",
    )
