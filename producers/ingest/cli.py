"""`levers-ingest [--host H] [--port P]`: serve the ingest app with uvicorn, one process.

Refuses to start (exit 2, one line naming the variable) without LEVERS_INGEST_TOKENS, unless
LEVERS_INGEST_INSECURE_NO_AUTH=true says that anyone may enqueue (local demos). SIGTERM or
SIGINT stops it gracefully: requests in flight are answered first.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (1..65535)")
    return port


def main(argv: list[str] | None = None) -> int:
    from worker.commands import (
        REDIS_VARIABLES,
        HelpFormatter,
        environment_help,
        epilog,
        exit_codes_help,
        paragraphs,
    )

    parser = argparse.ArgumentParser(
        prog="levers-ingest",
        description=paragraphs(
            "Serve levers-batcher over HTTP: POST /v1/contacts (contacts from any backend, "
            "bearer tokens), POST /v1/webhooks/levers (Levers' call outcomes, Svix-signed), "
            "/console (the operators' console, its own logins: docs/console.md), and /healthz, "
            "/readyz, /metrics. OpenAPI at /docs. SIGTERM or SIGINT stops it gracefully."
        ),
        formatter_class=HelpFormatter,
        epilog=epilog(
            exit_codes_help(
                (
                    (0, "stopped by SIGTERM or SIGINT"),
                    (1, "could not start serving (the port is taken, say)"),
                    (2, "bad settings: no LEVERS_INGEST_TOKENS (nor the opt-out), or another"),
                )
            ),
            environment_help(
                (
                    *REDIS_VARIABLES,
                    "ingest_host",
                    "ingest_port",
                    "ingest_tokens",
                    "ingest_insecure_no_auth",
                    "webhook_secret",
                    "console_users",
                    "console_tokens",
                    "console_reveal_users",
                )
            ),
        ),
    )
    parser.add_argument("--host", help="address to listen on (default: LEVERS_INGEST_HOST)")
    parser.add_argument(
        "--port", type=_port, help="port to listen on (default: LEVERS_INGEST_PORT)"
    )
    args = parser.parse_args(argv)
    # The ingest keeps its metrics in its own registry: a multiprocess directory left in the
    # environment for the worker must not receive them (read before prometheus_client loads).
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    import uvicorn

    from producers.ingest.app import auth_problem, create_app
    from worker import logs
    from worker.settings import settings_or_exit

    settings = settings_or_exit()
    problem = auth_problem(settings)
    if problem:
        print(f"levers-ingest: {problem}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    log = logging.getLogger("levers.ingest")
    if settings.ingest_insecure_no_auth:
        log.warning("serving without auth (LEVERS_INGEST_INSECURE_NO_AUTH): anyone may enqueue")
    if not settings.webhook_secret:
        log.warning(
            "LEVERS_WEBHOOK_SECRET is not set: POST /v1/webhooks/levers answers 503 "
            "(Levers' call outcomes are not received)"
        )
    host = args.host or settings.ingest_host
    port = args.port or settings.ingest_port
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # our handlers (worker.logs): one format, numbers masked
        access_log=False,  # the app logs one line per POST, with its counts
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again through the
    # handler in place before it: with these, a clean stop exits 0, as levers-worker does.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    server.run()
    # uvicorn returns without raising when it could not bind or start.
    return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
