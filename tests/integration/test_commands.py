"""The console scripts as a user runs them: `levers-enqueue` and `levers-admin`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.servers import wait_for
from tests.workers import WorkerProcess
from worker.sandbox import Sandbox

pytestmark = pytest.mark.integration


def run(module: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_csv_import_enqueues_valid_rows_and_reports_the_rest(
    tmp_path: Path,
    worker_env: dict[str, str],
    sandbox: Sandbox,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text(
        "numberToCall,firstName,updateExisting,tag:amount,meta:crm_id\n"
        "+966501234567,Sara,false,120,1\n"
        "0501234568,Omar,true,80,2\n"  # national: rejected, no region configured
        "+447911123456,Ann,true,50,3\n"
        "+96612341234,Bad,false,10,4\n",  # too short to be valid
        encoding="utf-8",
    )
    imported = run("producers.importer", [str(csv_file)], worker_env)
    assert imported.returncode == 1, imported.stderr
    assert "4 rows, 2 accepted, 2 rejected" in imported.stdout
    # The file's own line numbers: the header is line 1.
    assert "line 3: unparseable_number" in imported.stdout
    assert "line 5: invalid_number" in imported.stdout
    # No worker consumes the namespace yet: a warning, and the rows are enqueued all the same.
    assert "warning: no levers-worker is consuming namespace" in imported.stderr

    start_worker().wait_ready()
    wait_for(lambda: len(sandbox.accepted()) == 2, 20, what="both update_existing batches")
    later = tmp_path / "later.csv"
    later.write_text("number\n+966501234599\n", encoding="utf-8")
    again = run("producers.importer", [str(later)], worker_env)
    assert again.returncode == 0 and "warning" not in again.stderr, again.stderr
    wait_for(lambda: len(sandbox.accepted()) == 3, 20, what="the later file's contact")
    sent = {
        (r.body["updateExisting"], c["numberToCall"], c.get("promptTags", {}).get("amount"))
        for r in sandbox.accepted()
        for c in r.body["contacts"]
    }
    assert sent == {
        (False, "+966501234567", "120"),
        (True, "+447911123456", "50"),
        (False, "+966501234599", None),
    }
    # The sandbox answered; the worker records the answer right after.
    status = wait_for(
        lambda: (
            (r := run("worker.cli_admin", ["status"], worker_env)).returncode == 0
            and "contacts_sent          3" in r.stdout
            and r
        ),
        10,
        what="status to show the three contacts sent",
    )
    assert "backlog: 0 contacts not yet sent" in status.stdout


def test_worker_refuses_to_start_with_bad_settings_or_no_credentials(
    worker_env: dict[str, str],
) -> None:
    bad = {**worker_env, "LEVERS_BATCH_MAX_SIZE": "zero", "LEVERS_BASE_URL": "ftp://x"}
    result = run("worker.cli", [], bad)
    assert result.returncode == 2
    assert "LEVERS_BATCH_MAX_SIZE" in result.stderr and "LEVERS_BASE_URL" in result.stderr

    anonymous = {k: v for k, v in worker_env.items() if not k.startswith("LEVERS_CLIENT")}
    result = run("worker.cli", [], anonymous)
    assert result.returncode == 2
    assert "LEVERS_API_TOKEN" in result.stderr
