"""What a metrics scrape and `levers-admin status` cost with 10 or 100,000 batches in flight.

    python -m benchmarks.scrape [--batches 10,100000] [--repeats 500]

For each count, a private redis-server gets that many batches in flight, made by the real
append script (batches of one contact, each cut as it is appended, so each is a real batch
record in the `cut` state, in the inflight schedule and in the gauges), plus the same few
pending contacts under four batch keys. Then it times, `--repeats` times each, what the
worker's /metrics endpoint reads from Redis (`RedisStateCollector` and
`OutcomeStateCollector`, worker/exposition.py and worker/outcome_metrics.py) and the report
`levers-admin status` prints (`status_report`, worker/admin/status.py), and the Redis CPU
each costs (INFO commandstats). For comparison, it times what a scrape would cost if it read
every in-flight batch's state instead of the counters the scripts keep (lua/states.lua).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from worker.admin.status import status_report
from worker.buffers import BufferConfig, Buffers
from worker.contacts import Contact
from worker.eligibility import SEND_NOW
from worker.exposition import RedisStateCollector
from worker.holds import Holds
from worker.keys import Keys
from worker.local import RedisServer
from worker.outcome_metrics import OutcomeStateCollector
from worker.settings import Settings

NAMESPACE = "scrape"
TEMPLATES = (
    None,
    "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10",
    "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5",
    "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
)
PENDING = 40  # contacts left pending, spread over the four batch keys, in every run
CHUNK = 1_000  # appends per round trip while filling


def contact(i: int) -> Contact:
    return Contact(number=f"+9665{i:08d}", first_name="Sara", template_id=TEMPLATES[i % 4])


def fill(client: redis.Redis, keys: Keys, batches: int) -> None:
    """`batches` batches of one contact in flight, then PENDING contacts pending."""
    cutting = Buffers(client, keys, BufferConfig(batch_max_size=1))
    for start in range(0, batches, CHUNK):
        chunk = range(start, min(batches, start + CHUNK))
        results = cutting.append_many([(contact(i), f"m{i}:0", SEND_NOW) for i in chunk])
        if any(r.batch_id is None for r in results):
            raise SystemExit("an append did not cut its batch")
    waiting = Buffers(client, keys, BufferConfig(batch_max_size=100, batch_max_wait_seconds=3600))
    waiting.append_many(
        [(contact(batches + i), f"p{i}:0", SEND_NOW) for i in range(PENDING)],
    )


def redis_cpu_us(client: redis.Redis) -> float:
    stats = client.info("commandstats")
    return sum(float(v["usec"]) for v in stats.values())


def timed(client: redis.Redis, work: Callable[[], Any], repeats: int) -> tuple[float, float, float]:
    """(median ms, p95 ms, Redis CPU µs per call) over `repeats` calls, after a warm-up as
    long (which also lets Redis finish rehashing the keyspace the fill grew)."""
    for _ in range(repeats):
        work()
    durations = []
    cpu_before = redis_cpu_us(client)
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        durations.append((time.perf_counter() - started) * 1000)
    cpu = (redis_cpu_us(client) - cpu_before) / repeats
    durations.sort()
    p95 = durations[min(len(durations) - 1, int(0.95 * len(durations)))]
    return statistics.median(durations), p95, cpu


def read_every_batch(client: redis.Redis, keys: Keys) -> int:
    """The cost the counters avoid: the state of every in-flight batch, one HGET each."""
    pipe = client.pipeline(transaction=False)
    for batch_id in client.zrange(keys.inflight, 0, -1):
        pipe.hget(keys.batch(batch_id.decode()), "state")
    return len(pipe.execute())


def measure(server: RedisServer, batches: int, repeats: int) -> dict[str, Any]:
    client = redis.Redis.from_url(server.url)
    client.flushall()
    keys = Keys(NAMESPACE)
    settings = Settings.from_env({"REDIS_URL": server.url, "LEVERS_NAMESPACE": NAMESPACE})
    fill(client, keys, batches)
    report = status_report(settings, client)
    in_flight = sum(report["batches_in_flight"].values())
    if in_flight != batches or report["pending_contacts"] != PENDING:
        raise SystemExit(f"filled {in_flight} batches / {report['pending_contacts']} pending")
    config = BufferConfig()
    state = RedisStateCollector(
        Buffers(client, keys, config),
        Holds(client, keys, config),
        settings.metrics_max_batch_keys,
        settings.max_requests_per_second,
    )
    outcomes = OutcomeStateCollector(client, keys)

    def scrape() -> None:
        list(state.collect())
        list(outcomes.collect())

    row = {
        "batches": batches,
        "used_memory_mb": int(client.info("memory")["used_memory"]) / 1e6,
        "scrape": timed(client, scrape, repeats),
        "status": timed(client, lambda: status_report(settings, client), repeats),
        "every_batch": timed(client, lambda: read_every_batch(client, keys), max(3, repeats // 50)),
    }
    client.flushall()
    client.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="10,100000", help="comma-separated counts")
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    counts = [int(c) for c in args.batches.split(",")]
    server = RedisServer(Path(tempfile.mkdtemp(prefix="levers-scrape-"))).start()
    try:
        rows = [measure(server, n, args.repeats) for n in counts]
    finally:
        server.stop()
    print(
        f"{'batches in flight':>17} | {'Redis MB':>8} | {'scrape ms p50/p95':>17} | "
        f"{'Redis µs':>8} | {'status ms p50/p95':>17} | {'Redis µs':>8} | "
        f"{'every batch read, ms':>20}"
    )
    for row in rows:
        s_med, s_p95, s_cpu = row["scrape"]
        t_med, t_p95, t_cpu = row["status"]
        e_med = row["every_batch"][0]
        print(
            f"{row['batches']:>17,} | {row['used_memory_mb']:>8.1f} | "
            f"{s_med:>8.2f}/{s_p95:<8.2f} | {s_cpu:>8.0f} | {t_med:>8.2f}/{t_p95:<8.2f} | "
            f"{t_cpu:>8.0f} | {e_med:>20.2f}"
        )


if __name__ == "__main__":
    main()
