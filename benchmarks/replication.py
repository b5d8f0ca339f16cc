"""What LEVERS_REDIS_MIN_REPLICAS costs: appends and producer enqueues with WAIT and without.

    python -m benchmarks.replication [--contacts 4000] [--runs 3] [--threads 1,8]   # about 45 s

Starts its own primary and one replica (redis-server, on this machine, so a replica round trip
is a loopback one plus the replica's own work on the same cores) and measures, with
LEVERS_REDIS_MIN_REPLICAS=0 and =1, each into an emptied database:

* aggregator appends: `Aggregator.handle` on messages of 50 contacts, as a worker's contact
  threads run it (validate, append Lua + WAIT in one round trip, queue the send tokens of the
  batches cut, settle), from 1 and from 8 threads;
* one `append_many` of 50 contacts, and one small Lua write (as `begin` and `finish` are):
  their round trips (medians), single thread;
* the producer: `enqueue_contacts` (500 contacts per transaction) and `enqueue_contact` (one
  per call).

Prints medians of the runs with their spread; the cost column is the change from 0 to 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
CHUNK = 50


def payload(i: int) -> dict[str, Any]:
    return {"number": f"+96655{i:07d}", "first_name": "Sara", "template_id": TEMPLATE}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.replication")
    parser.add_argument("--contacts", type=int, default=4_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", default="1,8", help="aggregator thread counts")
    args = parser.parse_args(argv)
    # Metrics in multiprocess mode, as in a worker: set before prometheus_client is imported.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="levers-replication-")

    import redis

    from producers.api import Producer
    from tests.sentinels import ReplicaSet
    from worker.aggregator import Aggregator
    from worker.backlog import QueuedContacts
    from worker.broker import build_broker
    from worker.buffers import Buffers
    from worker.contacts import validate_contact
    from worker.keys import Keys
    from worker.metrics import Metrics
    from worker.outbox import Outbox
    from worker.rejects import Rejects
    from worker.runtime import buffer_config, durability, outbox_config
    from worker.settings import Settings

    servers = ReplicaSet(Path(tempfile.mkdtemp(prefix="levers-replication-")), sentinels=0)
    servers.start()
    primary = redis.Redis.from_url(servers.servers[0].url)
    results: dict[str, dict[int, list[float]]] = {}

    def record(name: str, replicas: int, value: float) -> None:
        results.setdefault(name, {}).setdefault(replicas, []).append(value)

    def settings(replicas: int) -> Settings:
        return Settings.from_env(
            {
                "REDIS_URL": servers.servers[0].url,
                "LEVERS_NAMESPACE": "bench",
                "LEVERS_REDIS_MIN_REPLICAS": str(replicas),
                # Long enough that a slow confirmation is a cost here, never a shortfall.
                "LEVERS_REDIS_WAIT_TIMEOUT_MS": "10000",
            }
        )

    def aggregator_for(own: Settings) -> tuple[Aggregator, Any]:
        broker = build_broker(own)
        keys, metrics = Keys(own.namespace), Metrics()
        wait = durability(own, metrics)
        return Aggregator(
            Buffers(broker.client, keys, buffer_config(own), durability=wait),
            Outbox(broker.client, keys, outbox_config(own), broker, durability=wait),
            Rejects(broker.client, keys),
            QueuedContacts(broker.client, keys),
            metrics,
        ), broker

    def appends(own: Settings, threads: int) -> float:
        """Contacts per second through Aggregator.handle from `threads` threads."""
        aggregator, broker = aggregator_for(own)
        chunks = [
            [payload(i) for i in range(first, min(first + CHUNK, args.contacts))]
            for first in range(0, args.contacts, CHUNK)
        ]
        shares = [chunks[t::threads] for t in range(threads)]

        def work(share: list[list[dict[str, Any]]], t: int) -> None:
            for n, chunk in enumerate(share):
                aggregator.handle(chunk, f"m-{t}-{n}")

        workers = [threading.Thread(target=work, args=(s, t)) for t, s in enumerate(shares)]
        started = time.perf_counter()
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        seconds = time.perf_counter() - started
        broker.close()
        return args.contacts / seconds

    def append_round_trip(own: Settings) -> float:
        """Median ms of one append_many of CHUNK contacts."""
        aggregator, broker = aggregator_for(own)
        contacts = [(validate_contact(payload(i)), f"rt:{i}") for i in range(args.contacts)]
        times = []
        for first in range(0, len(contacts), CHUNK):
            started = time.perf_counter()
            aggregator.buffers.append_many(contacts[first : first + CHUNK])
            times.append(time.perf_counter() - started)
        broker.close()
        return statistics.median(times) * 1000

    def small_write_round_trip(own: Settings) -> float:
        """Median ms of one small Lua write (as `begin` and `finish` are) through Durability."""
        wait = durability(own)
        script = primary.register_script("return redis.call('INCR', KEYS[1])")
        times = []
        for _ in range(1000):
            started = time.perf_counter()
            wait.run_script(primary, script, ["bench:n"], [], "bench")
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    def producer_rate(own: Settings, single: bool) -> float:
        producer = Producer(own)
        try:
            if single:
                count = min(args.contacts, 1000)
                started = time.perf_counter()
                for i in range(count):
                    producer.enqueue_contact(**{"number": f"+96655{i:07d}"})
                return count / (time.perf_counter() - started)
            rows = [payload(i) for i in range(args.contacts)]
            started = time.perf_counter()
            result = producer.enqueue_contacts(rows)
            seconds = time.perf_counter() - started
            assert len(result.accepted) == args.contacts and not result.unconfirmed
            return args.contacts / seconds
        finally:
            producer.close()

    measures: list[tuple[str, Callable[[Settings], float]]] = [
        *(
            (
                f"aggregator appends, {t} thread{'s' if t > 1 else ''} (contacts/s)",
                _bind(appends, t),
            )
            for t in (int(x) for x in args.threads.split(","))
        ),
        ("one append_many of 50, median round trip (ms)", append_round_trip),
        ("one small Lua write (as begin, finish), median round trip (ms)", small_write_round_trip),
        ("producer enqueue_contacts (contacts/s)", lambda s: producer_rate(s, False)),
        ("producer enqueue_contact, one per call (calls/s)", lambda s: producer_rate(s, True)),
    ]
    try:
        for run in range(args.runs):
            for name, measure in measures:
                for replicas in (0, 1):
                    primary.flushall()
                    record(name, replicas, measure(settings(replicas)))
            print(f"run {run + 1}/{args.runs} done", flush=True)
    finally:
        primary.close()
        servers.stop()
    print(render(results, args))
    return 0


def _bind(function: Callable[[Any, int], float], threads: int) -> Callable[[Any], float]:
    return lambda own: function(own, threads)


def render(results: dict[str, dict[int, list[float]]], args: argparse.Namespace) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):,.2f} ({min(values):,.2f}-{max(values):,.2f})"

    lines = [
        f"LEVERS_REDIS_MIN_REPLICAS, primary + 1 replica on this machine; {args.contacts:,} "
        f"contacts, medians of {args.runs} runs (min-max)",
        "",
        "| figure | MIN_REPLICAS=0 | MIN_REPLICAS=1 | change |",
        "| --- | --- | --- | --- |",
    ]
    for name, by in results.items():
        before, after = statistics.median(by[0]), statistics.median(by[1])
        lines.append(
            f"| {name} | {cell(by[0])} | {cell(by[1])} | {(after - before) / before:+.0%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
