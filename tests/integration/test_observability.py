"""G5 on a real run: the endpoint of a two-process worker, promtool, the deploy files, the logs."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable

import httpx
import pytest
import redis

from producers.api import Producer
from tests.integration.conftest import CLIENT_SECRET, State
from tests.integration.reconcile import settle
from tests.integration.test_pipeline import metric
from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.broker import contact_message
from worker.deadletters import DeadLetters
from worker.keys import Keys
from worker.sandbox import Sandbox
from worker.settings import Settings

pytestmark = pytest.mark.integration

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? ", re.MULTILINE)


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: apt-get install prometheus (Debian's package has it)"
    return path


def test_a_real_run_is_counted_checked_and_logged_safely(
    sandbox: Sandbox,
    producer: Producer,
    settings: Settings,
    redis_client: redis.Redis,
    state: State,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    numbers = [f"+96655{i:07d}" for i in range(300)]
    # Some of everything: throttles, failures, and one contact Levers refuses.
    sandbox.configure(rate_429=0.05, fail_rate=0.05, reject_numbers=frozenset({numbers[7]}), seed=9)
    result = producer.enqueue_contacts(
        [
            {"number": n, "template_id": None if i % 2 else "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"}
            for i, n in enumerate(numbers)
        ]
    )
    assert len(result.accepted) == 300
    # 150 contacts per batch key in batches of 25: all cut by size, none left to the clock.
    worker = start_worker(2, 4, LEVERS_BATCH_MAX_SIZE="25", LEVERS_BATCH_MAX_WAIT_SECONDS="60")
    settle(sandbox, DeadLetters(redis_client, Keys(settings.namespace)), set(numbers), 60)
    # One contact left pending, and one message that only the worker's validation catches.
    producer.enqueue_contact("+966559999999")
    producer.broker.enqueue(contact_message({"number": "+96612341234"}))
    wait_for(lambda: state.pending_status() and state.stats().get("rejected_invalid_number"), 10)

    base = f"http://127.0.0.1:{settings.metrics_port}"
    assert httpx.get(f"{base}/healthz").status_code == 200
    assert httpx.get(f"{base}/readyz").status_code == 200
    scrape = httpx.get(f"{base}/metrics").text

    # Counters of both processes add up to what happened.
    assert (
        metric(scrape, 'levers_contacts_total{outcome="appended"}') == 300 + 1
    )  # + the pending one
    sent = metric(scrape, "levers_contacts_sent_total")
    dead = metric(scrape, 'levers_dead_letters_total{reason="invalid_contact"}')
    assert (sent, dead) == (299, 1)
    assert metric(scrape, "levers_contact_wait_seconds_count") >= 299
    # A process fetches its token for its first request: one that happened to send none of
    # the twelve batches fetched none.
    assert metric(scrape, "levers_token_refreshes_total") >= 1
    assert metric(scrape, "levers_dead_letters_held") == 1
    assert metric(scrape, 'levers_pending_contacts{batch_key="default:0"}') == 1
    assert metric(scrape, 'levers_contacts_rejected_total{reason="invalid_number"}') == 1

    # promtool finds nothing wrong except in dramatiq's own millisecond histogram.
    check = subprocess.run(
        [promtool(), "check", "metrics"], input=scrape, capture_output=True, text=True, check=False
    )
    complaints = [
        line
        for line in (check.stdout + check.stderr).splitlines()
        if line.strip() and not line.startswith("dramatiq_")
    ]
    assert complaints == [], complaints

    # Every metric the dashboard and the alert rules use is in a real scrape.
    from tests.deploy_files import metric_names_used

    exposed = set(SAMPLE.findall(scrape))
    missing = metric_names_used() - exposed
    assert not missing, f"used by deploy/ but not exposed: {sorted(missing)}"

    assert worker.stop() == 0
    log = worker.log_path.read_text(encoding="utf-8")
    assert "batch sent" in log
    leaked = [n for n in numbers if n in log]
    assert not leaked, f"full numbers in the log: {leaked[:3]}"
    assert CLIENT_SECRET not in log and "eyJ" not in log  # no secret, no JWT
