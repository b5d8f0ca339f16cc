"""`levers-worker`: start-up checks, the metrics endpoint, then the process supervisor.

Every mistake that stops start-up (a bad option or variable, no credentials, the metrics port
taken) is one line on stderr and exit status 2. Wrong credentials and an unreachable Redis do
not stop it: they are said once in the log, and `/readyz` answers 503 until they are put right.
`levers-admin` lives in `worker.admin`.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import httpx

from worker import logs
from worker.commands import (
    HelpFormatter,
    environment_help,
    epilog,
    exit_codes_help,
    fail,
    paragraphs,
    positive_int,
)
from worker.connection import connect, no_retry
from worker.levers import Timeouts, TokenProvider
from worker.readiness import AuthCheck, Readiness
from worker.settings import Settings, settings_or_exit, variable
from worker.supervisor import Supervisor

log = logging.getLogger("levers.worker")

PROG = "levers-worker"
DEFAULT_THREADS = 8
EXIT_CODES = (
    (0, "stopped by SIGTERM or SIGINT after every worker process finished its requests"),
    (
        1,
        "a worker process died; the others were stopped. Nothing restarts them here: run it "
        "under systemd (Restart=always) or Kubernetes, which start it again",
    ),
    (
        2,
        "did not start: bad option or variable, no Levers credentials, or the metrics port "
        "is taken",
    ),
)


def default_processes() -> int:
    return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=paragraphs(
            "Run levers-batcher worker processes: each appends contacts from the "
            "queue to their batches in Redis, cuts batches by size or age and sends them to "
            "Levers within the rate limits. Serves /metrics, /healthz and /readyz on "
            "LEVERS_METRICS_PORT. Producers and workers must share REDIS_URL and LEVERS_NAMESPACE."
        ),
        formatter_class=HelpFormatter,
        epilog=epilog(
            exit_codes_help(EXIT_CODES),
            environment_help()
            + "\n  PROMETHEUS_MULTIPROC_DIR        directory of the processes' metrics files, "
            "emptied at\n                                  start; default: "
            "$TMPDIR/levers-metrics-<LEVERS_METRICS_PORT>",
        ),
    )
    parser.add_argument(
        "--processes",
        type=positive_int,
        default=default_processes(),
        metavar="N",
        help="worker processes (default: the CPU count, %(default)s here)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=DEFAULT_THREADS,
        metavar="M",
        help="aggregator threads per process (default: %(default)s)",
    )
    parser.add_argument(
        "--send-threads",
        type=positive_int,
        metavar="S",
        help="sender threads per process, a pool of their own so that a send waiting for "
        "its rate-limit slot never delays appends (default: as many as --threads)",
    )
    return parser


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


def auth_check(settings: Settings) -> AuthCheck:
    """The Levers credentials check shared by start-up and /readyz."""
    tokens = TokenProvider(
        httpx.Client(
            base_url=settings.base_url,
            timeout=Timeouts(settings.connect_timeout_seconds, 10).to_httpx(),
        ),
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        api_token=settings.api_token,
    )
    via = (
        f" (check {variable('client_id')} and {variable('client_secret')})"
        if not settings.api_token
        else ""
    )
    return AuthCheck(tokens, settings.base_url, hint=via)


def start_endpoint(settings: Settings, supervisor: Supervisor, auth: AuthCheck) -> None:
    """/metrics, /healthz and /readyz on LEVERS_METRICS_PORT (see docs/metrics.md); exit 2 with
    one line when the port cannot be had."""
    # Imported here, after PROMETHEUS_MULTIPROC_DIR is set: prometheus_client reads it on import.
    from prometheus_client import CollectorRegistry, multiprocess

    from worker.buffers import Buffers
    from worker.exposition import Endpoint, RedisStateCollector
    from worker.holds import Holds
    from worker.keys import Keys
    from worker.runtime import buffer_config

    # A scrape or a probe during an outage answers at once instead of riding out the retries
    # that the workers' own writes get (worker/connection.py).
    client = connect(settings, retry=no_retry())
    keys = Keys(settings.namespace)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(
        RedisStateCollector(
            Buffers(client, keys, buffer_config(settings)),
            Holds(client, keys, buffer_config(settings)),
            settings.metrics_max_batch_keys,
            settings.max_requests_per_second,
        )
    )
    from worker.outcome_metrics import OutcomeStateCollector

    registry.register(OutcomeStateCollector(client, keys))
    ready = Readiness(client, settings, auth)
    try:
        endpoint = Endpoint(settings.metrics_port, registry, supervisor.healthy, ready)
    except OSError as exc:
        why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise fail(
            PROG,
            f"cannot serve metrics on port {settings.metrics_port} "
            f"({variable('metrics_port')}={settings.metrics_port}): {why}. Each levers-worker "
            f"on a host needs its own {variable('metrics_port')} (0 turns the endpoint off)",
        ) from None
    endpoint.start()


def worker_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_or_exit(prog=PROG)
    if not settings.has_credentials:
        raise fail(
            PROG,
            "no Levers credentials: set LEVERS_API_TOKEN, or LEVERS_CLIENT_ID and "
            "LEVERS_CLIENT_SECRET (or their *_FILE variants)",
        )
    from worker.errors import PolicyError
    from worker.policy import policy_from_settings

    try:
        policy_from_settings(settings)  # a bad policy stops start-up here, not in every process
    except PolicyError as exc:
        raise fail(PROG, str(exc)) from None
    from worker.outcome_checks import check_or_exit

    check_or_exit(settings)
    logs.configure(settings.log_level, settings.log_format)
    prepare_metrics_dir(settings.metrics_port)
    supervisor = Supervisor(args.processes, args.threads, args.send_threads or args.threads)
    auth = auth_check(settings)
    if settings.metrics_port:
        start_endpoint(settings, supervisor, auth)
    # One auth call at start-up, beside the start of the processes rather than before it:
    # a slow Levers must not delay consuming. Its verdict is logged once (worker.readiness).
    threading.Thread(target=auth.check, name="levers-auth-check", daemon=True).start()
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(worker_main())
