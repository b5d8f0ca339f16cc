"""Console scripts: `levers-worker` (process supervisor + metrics endpoint) and `levers-admin`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from worker import logs
from worker.connection import connect
from worker.settings import Settings, settings_or_exit

log = logging.getLogger("levers.worker")


# -- levers-worker -------------------------------------------------------------------------


def prepare_metrics_dir(port: int) -> Path:
    """One multiprocess directory for dramatiq's metrics and ours, emptied before start:
    stale files from a previous run would otherwise be added into the new counts."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = (
        Path(configured) if configured else Path(tempfile.gettempdir()) / f"levers-metrics-{port}"
    )
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    os.environ["dramatiq_prom_db"] = str(path)  # noqa: SIM112 (dramatiq reads this name)
    return path


def start_endpoint(settings: Settings, supervisor: Supervisor) -> None:
    """/metrics, /healthz and /readyz on LEVERS_METRICS_PORT (see docs/metrics.md)."""
    # Imported here, after PROMETHEUS_MULTIPROC_DIR is set: prometheus_client reads it on import.
    import httpx
    import redis
    from prometheus_client import CollectorRegistry, multiprocess

    from worker.buffers import Buffers
    from worker.errors import LeversAuthError
    from worker.exposition import Endpoint, RedisStateCollector
    from worker.keys import Keys
    from worker.levers import Timeouts, TokenProvider
    from worker.runtime import buffer_config

    client = connect(settings)
    buffers = Buffers(client, Keys(settings.namespace), buffer_config(settings))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(
        RedisStateCollector(
            buffers, settings.metrics_max_batch_keys, settings.max_requests_per_second
        )
    )
    from worker.outcome_metrics import OutcomeStateCollector

    registry.register(OutcomeStateCollector(client, Keys(settings.namespace)))
    tokens = TokenProvider(
        httpx.Client(
            base_url=settings.base_url,
            timeout=Timeouts(settings.connect_timeout_seconds, 10).to_httpx(),
        ),
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        api_token=settings.api_token,
    )

    def ready() -> str | None:
        try:
            client.ping()
        except redis.RedisError as exc:
            return f"Redis does not answer ({type(exc).__name__})"
        try:
            tokens.get()
        except LeversAuthError as exc:
            return f"no Levers token: {exc}"
        return None

    Endpoint(settings.metrics_port, registry, supervisor.healthy, ready).start()


class Supervisor:
    """Runs N worker processes; exits non-zero if one dies, so systemd or Kubernetes notice."""

    def __init__(self, processes: int, threads: int, send_threads: int) -> None:
        self.processes = processes
        self.threads = threads
        self.send_threads = send_threads
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = threading.Event()
        self.signals = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.process",
                "--threads",
                str(self.threads),
                "--send-threads",
                str(self.send_threads),
            ]
        )

    def healthy(self) -> bool:
        return not self.stopping.is_set() and all(c.poll() is None for c in self.children)

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.signals += 1
        self.stopping.set()
        # First signal: graceful (finish requests in flight). Second: stop at once.
        sig = signal.SIGTERM if self.signals == 1 else signal.SIGKILL
        for child in self.children:
            if child.poll() is None:
                child.send_signal(sig)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        self.children = [self.spawn() for _ in range(self.processes)]
        log.info(
            "levers-worker started",
            extra={
                "processes": self.processes,
                "threads": self.threads,
                "pids": ",".join(str(c.pid) for c in self.children),
            },
        )
        announced = 0
        while True:
            if self.signals != announced:
                announced = self.signals
                if announced == 1:
                    log.info(
                        "stopping: finishing requests in flight; a second signal stops at once"
                    )
                else:
                    log.warning("stopping at once")
            for child in self.children:
                code = child.poll()
                if code is not None and not self.stopping.is_set():
                    log.error("worker process died", extra={"pid": child.pid, "code": code})
                    self.on_signal(signal.SIGTERM, None)
            if all(child.poll() is not None for child in self.children):
                break
            # Not stopping.wait(): once stopping is set it returns at once, and this loop would
            # spin on a core while the processes finish their requests.
            time.sleep(0.2)
        codes = [child.returncode for child in self.children]
        clean = self.signals > 0 and all(code == 0 for code in codes)
        return 0 if clean else 1


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="levers-worker", description="Run levers-batcher worker processes."
    )
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=8, help="aggregator threads per process")
    parser.add_argument(
        "--send-threads", type=int, help="sender threads per process (default: --threads)"
    )
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    if not settings.has_credentials:
        print(
            "invalid configuration:\n  set LEVERS_API_TOKEN, or LEVERS_CLIENT_ID and "
            "LEVERS_CLIENT_SECRET (or their *_FILE variants)",
            file=sys.stderr,
        )
        return 2
    from worker.outcome_checks import check_or_exit

    check_or_exit(settings)
    logs.configure(settings.log_level, settings.log_format)
    prepare_metrics_dir(settings.metrics_port)
    threads = max(1, args.threads)
    send_threads = max(1, args.send_threads or threads)
    supervisor = Supervisor(max(1, args.processes), threads, send_threads)
    if settings.metrics_port:
        start_endpoint(settings, supervisor)
    return supervisor.run()


# -- levers-admin --------------------------------------------------------------------------


def status_report(settings: Settings) -> dict[str, Any]:
    """Everything `levers-admin status` shows, text or JSON, gathered in one place."""
    from worker.backlog import read_backlog, read_totals
    from worker.buffers import Buffers
    from worker.keys import Keys
    from worker.runtime import buffer_config

    client = connect(settings)
    keys = Keys(settings.namespace)
    buffers = Buffers(client, keys, buffer_config(settings))
    backlog = read_backlog(client, keys)
    return {
        "namespace": settings.namespace,
        "backlog_contacts": backlog.total,
        "queued_contacts": backlog.queued,
        "queue_messages": backlog.queue_messages,
        "pending": [
            {
                "batch_key": s.batch_key,
                "contacts": s.pending,
                "oldest_age_seconds": round(s.oldest_age_seconds, 3),
            }
            for s in buffers.pending_status()
        ],
        "batches_in_flight": backlog.batches,
        "contacts_in_flight": backlog.in_flight,
        "totals": read_totals(client, keys),
        "dead_letters": client.zcard(keys.dead_index),
    }


def print_status(report: dict[str, Any]) -> None:
    print(f"namespace: {report['namespace']}")
    print(f"backlog: {report['backlog_contacts']} contacts not yet sent")
    messages = report["queue_messages"]
    print(
        f"queued contacts (not yet aggregated): {report['queued_contacts']} "
        f"(messages: {messages['queue']} in the queue, {messages['delayed']} waiting to be "
        f"retried, {messages['failed']} failed)"
    )
    print("pending contacts by batch key:")
    if not report["pending"]:
        print("  (none)")
    for row in report["pending"]:
        age = row["oldest_age_seconds"]
        print(f"  {row['batch_key']:<45} {row['contacts']:>7}  oldest {age:.1f}s")
    batches, contacts = report["batches_in_flight"], report["contacts_in_flight"]
    print(
        "batches in flight: "
        + ", ".join(f"{state}={batches[state]} ({contacts[state]} contacts)" for state in batches)
    )
    totals = report["totals"]
    rejected = {k[len("rejected_") :]: v for k, v in totals.items() if k.startswith("rejected_")}
    print("totals:")
    for name in (
        "contacts_appended",
        "contacts_merged",
        "contacts_duplicate",
        "batches_cut_size",
        "batches_cut_time",
        "batches_sent",
        "contacts_sent",
        "contacts_dead",
    ):
        print(f"  {name:<22} {totals.get(name, 0)}")
    print("rejected: " + (", ".join(f"{k}={v}" for k, v in sorted(rejected.items())) or "0"))
    print(f"dead letters held: {report['dead_letters']}")


def print_dead_letters(records: list[dict[str, Any]]) -> None:
    from worker.contacts import mask_number

    if not records:
        print("no dead letters")
        return
    print(f"{'id':<36} {'reason':<18} {'status':>6} {'number':<16} {'batch key':<40} detail")
    for r in records:
        number = mask_number(r["contact"]["numberToCall"])
        detail = str(r.get("detail") or "").replace("\n", " ")[:60]
        status, key = r.get("status") or "", r["batch_key"]
        print(f"{r['id']:<36} {r['reason']:<18} {status:>6} {number:<16} {key:<40} {detail}")
    print(f"{len(records)} dead letters")


def dead_letters_command(settings: Settings, args: argparse.Namespace) -> int:

    from worker.deadletters import DeadLetters
    from worker.keys import Keys

    client = connect(settings)
    dead = DeadLetters(client, Keys(settings.namespace))
    if args.action != "list" and not (args.reason or args.id or args.batch_key or args.all):
        print(
            f"levers-admin: {args.action} needs --reason, --batch-key, --id or --all",
            file=sys.stderr,
        )
        return 2
    records = list(dead.select(reason=args.reason, batch_key=args.batch_key, ids=args.id or ()))
    if args.action == "list":
        records = records[: args.limit] if args.limit else records
        if args.json:
            # Whole records, numbers unmasked: for reconciliation with Levers' call logs.
            for record in records:
                print(json.dumps(record, sort_keys=True))
        else:
            print_dead_letters(records)
        return 0
    if args.action == "purge":
        removed = dead.delete(r["id"] for r in records)
        print(f"purged {removed} dead letters")
        return 0
    from producers.api import Producer

    producer = Producer(settings)
    try:
        result = dead.replay(records, producer.enqueue_contacts)
    finally:
        producer.close()
    print(f"replayed {len(result.replayed)} dead letters")
    for dl_id, reason in result.refused:
        print(f"  kept {dl_id}: {reason}")
    return 1 if result.refused else 0


def admin_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="levers-admin", description="Inspect levers-batcher state."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="pending contacts, batches in flight, totals")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    dead = sub.add_parser("dead-letters", help="list, replay or purge dead letters")
    dead.add_argument("action", choices=["list", "replay", "purge"])
    dead.add_argument("--reason", help="only this reason (e.g. unknown_outcome)")
    dead.add_argument("--batch-key", help="only this batch key (template:updateExisting)")
    dead.add_argument("--id", action="append", help="only this dead-letter id (repeatable)")
    dead.add_argument("--all", action="store_true", help="replay or purge every dead letter")
    dead.add_argument("--limit", type=int, default=0, help="list at most this many")
    dead.add_argument("--json", action="store_true", help="whole records, numbers unmasked")
    from worker import outcomes_cli
    from worker.policy import cli as policy_cli

    policy_cli.add_parser(sub)
    outcomes_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "policy":
        return policy_cli.handle(args)
    if args.command in outcomes_cli.COMMANDS:
        return outcomes_cli.handle(args)
    settings = settings_or_exit()
    if args.command == "dead-letters":
        return dead_letters_command(settings, args)
    report = status_report(settings)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main())
