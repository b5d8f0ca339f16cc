"""The benchmark suite: throughput, CPU cost, the naive design, producers, time bound, memory.

    python -m benchmarks.suite [--quick] [--json PATH] [--contacts N] [--runs R]

Starts its own redis-server and sandbox (the sandbox answers 201 at once: no latency, no
faults), starts and kills every worker itself, and prints one table: each figure's median and
spread (min-max) over the runs, its goal, and whether the goal is met. The definitions of the
figures are printed under the table. `--json PATH` also writes every run's raw numbers.

Figures (see `NOTES` for exact definitions):

1. end-to-end throughput of a prefilled contacts queue, 1x8 and 2x8 workers, dramatiq's default
   prefetch and `dramatiq_queue_prefetch=256`, against the floor (`benchmarks.noop`);
2. worker and Redis CPU seconds per 1,000 contacts of those pipeline runs;
3. one request per contact (`benchmarks.naive`), and both designs under a 5 requests/s limit;
4. producer rate, `Producer.enqueue_contacts` against a loop of `broker.enqueue`;
5. lateness of the time cut for lone contacts, in Redis and end to end;
6. Redis bytes per pending and per queued contact, and worker RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any, cast

import dramatiq
import redis

from benchmarks.procs import ProcessGroup, RssSampler, group_cpu_seconds
from producers.api import CHUNK_SIZE, PIPELINE_SIZE, Producer
from tests.servers import RedisServer
from tests.workers import WorkerProcess
from worker.broker import CONTACTS_QUEUE, build_broker, contact_message, enqueue_pipelined
from worker.contacts import batch_key, validate_contact
from worker.keys import Keys
from worker.sandbox import Sandbox, SandboxConfig
from worker.settings import Settings

NAMESPACE = "bench"
KEYS = Keys(NAMESPACE)
QUEUE_KEY = f"{KEYS.dramatiq}:{CONTACTS_QUEUE}"
MESSAGES_KEY = f"{QUEUE_KEY}.msgs"
HEARTBEATS_KEY = f"{KEYS.dramatiq}:__heartbeats__"
CLIENT_ID, CLIENT_SECRET = "bench", "bench-secret"
DEFAULT_PREFETCH = 0  # dramatiq's own: 2 x threads per consumer
PREFETCH_256 = 256
FAST = {
    "LEVERS_MAX_REQUESTS_PER_SECOND": "10000",
    "LEVERS_MAX_IN_FLIGHT": "0",
    "LEVERS_BATCH_MAX_SIZE": "100",
    "LEVERS_LOG_LEVEL": "WARNING",
}
MB = 1024 * 1024
THROUGHPUT_TEMPLATES = 3
FULL_ROUND = THROUGHPUT_TEMPLATES * 100  # contacts that fill one batch of 100 per template


# --- sizes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    runs: int
    contacts: int  # per throughput run (pipeline and floor)
    naive_contacts: int
    limited_seconds: float  # steady sending measured under the 5/s limit
    producer_contacts: int
    lone_contacts: int  # per time-bound run
    memory_contacts: int
    memory_templates: int


FULL = Sizes(
    runs=3,
    contacts=24_000,
    naive_contacts=5_000,
    limited_seconds=20,
    producer_contacts=20_000,
    lone_contacts=30,
    memory_contacts=100_000,
    memory_templates=20,
)
QUICK = Sizes(
    runs=1,
    contacts=18_000,
    naive_contacts=2_000,
    limited_seconds=10,
    producer_contacts=10_000,
    lone_contacts=20,
    memory_contacts=20_000,
    memory_templates=4,
)


# --- contacts ------------------------------------------------------------------------------


def template_ids(count: int, salt: str = "") -> list[str]:
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"levers-bench{salt}/{i}")) for i in range(count)]


def contact_rows(count: int, templates: int, first: int = 0) -> Iterator[dict[str, Any]]:
    """Distinct valid Saudi mobile numbers, spread evenly over `templates` templates."""
    ids = template_ids(templates)
    for i in range(first, first + count):
        yield {"number": f"+96655{i:07d}", "first_name": "Sara", "template_id": ids[i % templates]}


CONTACT_SHAPE = 'number "+96655NNNNNNN", first_name "Sara", template_id (a UUID)'


# --- statistics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q / 100
    lower = int(pos)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (pos - lower)


# --- the bench: one redis-server, one sandbox, every process it started ---------------------


class BenchError(RuntimeError):
    pass


@dataclass
class Bench:
    work: Path
    server: RedisServer
    sandbox: Sandbox
    client: redis.Redis
    groups: list[ProcessGroup] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("LEVERS_") and k not in ("dramatiq_queue_prefetch", "REDIS_URL")
        }
        env.update(
            {
                "REDIS_URL": self.server.url,
                "LEVERS_NAMESPACE": NAMESPACE,
                "LEVERS_BASE_URL": self.sandbox.url,
                "LEVERS_CLIENT_ID": CLIENT_ID,
                "LEVERS_CLIENT_SECRET": CLIENT_SECRET,
                "LEVERS_DEFAULT_WINDOW": "always",  # measure sending, not calling hours
                "LEVERS_METRICS_PORT": "0",
                "PROMETHEUS_MULTIPROC_DIR": str(self.work / f"metrics-{uuid.uuid4().hex[:8]}"),
            }
        )
        env.update(extra or {})
        return env

    def settings(self, extra: dict[str, str] | None = None) -> Settings:
        return Settings.from_env(self.env(extra))

    def reset(self) -> None:
        """An empty Redis and a sandbox that has seen nothing, accepting everything at once."""
        self.client.flushall()
        self.sandbox.reset()
        self.sandbox.configure(rate_limit_per_second=0.0)

    def redis_cpu_seconds(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def consumers(self) -> set[bytes]:
        """dramatiq broker ids that have sent a command (each worker process has one)."""
        return set(cast(list[bytes], self.client.zrange(HEARTBEATS_KEY, 0, -1)))

    def start_levers(
        self, processes: int, threads: int, extra: dict[str, str], name: str
    ) -> WorkerProcess:
        worker = WorkerProcess(self.env(extra), self.work / f"{name}.log", processes, threads)
        self.workers.append(worker)
        return worker.start()

    def start_module(
        self, module: str, processes: int, threads: int, extra: dict[str, str], name: str
    ) -> ProcessGroup:
        group = ProcessGroup.python_module(
            module,
            ["--processes", str(processes), "--threads", str(threads)],
            self.env(extra),
            self.work / f"{name}.log",
        )
        self.groups.append(group)
        return group.start()

    def stop_all(self) -> None:
        for worker in self.workers:
            try:
                worker.ensure_dead()
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop worker {worker.process}: {exc}")
        for group in self.groups:
            try:
                group.kill()
            except Exception as exc:
                print(f"warning: could not stop {group.argv}: {exc}")
        self.workers.clear()
        self.groups.clear()

    def enqueue_singles(self, rows: Iterable[dict[str, Any]]) -> int:
        """One message per contact (what the floor and the naive sender consume), pipelined."""
        broker = build_broker(self.settings())
        try:
            payloads = [validate_contact(row).to_message() for row in rows]
            for start in range(0, len(payloads), 500):
                chunk = payloads[start : start + 500]
                pipe = broker.client.pipeline(transaction=False)
                enqueue_pipelined(broker, (contact_message(p) for p in chunk), pipe)
                pipe.execute()
        finally:
            broker.close()
        return len(payloads)

    def enqueue(self, rows: Iterable[dict[str, Any]]) -> tuple[int, float]:
        """Producer.enqueue_contacts; returns (accepted, seconds)."""
        producer = Producer(self.settings())
        try:
            started = time.perf_counter()
            result = producer.enqueue_contacts(rows)
            elapsed = time.perf_counter() - started
        finally:
            producer.close()
        if result.rejected:
            raise BenchError(f"{len(result.rejected)} benchmark contacts rejected")
        return len(result.accepted), elapsed


# --- starting and watching workers ---------------------------------------------------------


@dataclass
class Started:
    """A worker process group, the moment it was spawned and when its processes began."""

    pgid: int
    alive: Callable[[], bool]
    log_tail: Callable[[], str]
    spawned: float
    first_consumer: float = 0.0
    all_consumers: float = 0.0
    cpu_at_first: float = 0.0
    redis_cpu_at_first: float = 0.0
    harness_cpu_at_first: float = 0.0
    machine_at_first: tuple[float, float] = (0.0, 0.0)


def levers_started(worker: WorkerProcess, spawned: float) -> Started:
    process = worker.process
    assert process is not None, "start the worker first"

    def tail() -> str:
        return "\n".join(line for _, line in worker.lines[-20:])

    return Started(process.pid, lambda: process.poll() is None, tail, spawned)


def group_started(group: ProcessGroup, spawned: float) -> Started:
    return Started(group.pid, group.alive, group.log_tail, spawned)


def wait_until(
    condition: Callable[[], bool],
    started: Started,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> float:
    """Poll until `condition`; the time (time.time) it was first seen true."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.time()
        if not started.alive():
            raise BenchError(f"workers died while waiting for {what}:\n{started.log_tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def watch_start(bench: Bench, started: Started, before: set[bytes], processes: int) -> None:
    """Record when the first and the last worker process sent dramatiq its first command.

    Worker CPU and Redis CPU are read at the first one: everything a process did before it
    could consume (interpreter start, imports) is left out of the CPU cost.
    """

    def new_ids() -> int:
        return len(bench.consumers() - before)

    started.first_consumer = wait_until(
        lambda: new_ids() >= 1, started, 60, "a worker process to consume", 0.005
    )
    started.cpu_at_first = group_cpu_seconds(started.pgid)
    started.redis_cpu_at_first = bench.redis_cpu_seconds()
    started.harness_cpu_at_first = harness_cpu_seconds()
    started.machine_at_first = machine_cpu()
    started.all_consumers = wait_until(
        lambda: new_ids() >= processes, started, 60, "every worker process to consume", 0.005
    )


def harness_cpu_seconds() -> float:
    """CPU of this process: the sandbox's threads, the pollers, the RSS sampler."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    values = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)
    return total - idle, total


def busy_share(since: tuple[float, float]) -> float:
    """Share of every core's time spent busy since `since` (1.0 = all cores saturated)."""
    busy, total = machine_cpu()
    return (busy - since[0]) / max(1.0, total - since[1])


def config_label(processes: int, threads: int, prefetch: int) -> str:
    shown = f"prefetch {prefetch}" if prefetch else f"prefetch {2 * threads} (dramatiq default)"
    return f"{processes}x{threads}, {shown}"


def prefetch_env(prefetch: int, threads: int) -> dict[str, str]:
    """Messages each consumer fetches ahead, for every pool: `prefetch`, or dramatiq's default
    (2 x threads) when 0. dramatiq reads `dramatiq_queue_prefetch`; levers-worker sets its
    contacts pool from LEVERS_CONTACTS_PREFETCH (shipped: 256) whatever dramatiq's variable says,
    so the pipeline gets both."""
    env = {"LEVERS_CONTACTS_PREFETCH": str(prefetch or 2 * threads)}
    if prefetch:
        env["dramatiq_queue_prefetch"] = str(prefetch)
    return env


# --- 1, 2, 6: pipeline and floor throughput, CPU, queue bytes, RSS --------------------------


def pipeline_run(
    bench: Bench, n: int, processes: int, threads: int, prefetch: int
) -> dict[str, Any]:
    bench.reset()
    empty = bench.used_memory()
    enqueued, enqueue_seconds = bench.enqueue(contact_rows(n, THROUGHPUT_TEMPLATES))
    queued_bytes = bench.used_memory() - empty
    before = bench.consumers()
    spawned = time.time()
    worker = bench.start_levers(
        processes, threads, {**FAST, **prefetch_env(prefetch, threads)}, "pipeline"
    )
    started = levers_started(worker, spawned)
    sampler = RssSampler(started.pgid).start()
    try:
        watch_start(bench, started, before, processes)
        done = wait_until(
            lambda: bench.sandbox.stats().accepted_contacts >= n,
            started,
            max(120.0, n / 200),
            f"the sandbox to accept {n} contacts",
        )
        cpu_total = group_cpu_seconds(started.pgid)
        cpu = cpu_total - started.cpu_at_first
        redis_cpu = bench.redis_cpu_seconds() - started.redis_cpu_at_first
        harness_cpu = harness_cpu_seconds() - started.harness_cpu_at_first
        busy = busy_share(started.machine_at_first)
    finally:
        sampler.stop()
        worker.ensure_dead()
    accepted = bench.sandbox.accepted()
    stats = bench.sandbox.stats()
    numbers = [c["numberToCall"] for r in accepted for c in r.body["contacts"]]
    if len(numbers) != n or len(set(numbers)) != n or set(stats.statuses) != {"201"}:
        raise BenchError(
            f"pipeline run wrong: {len(numbers)} contacts sent, {len(set(numbers))} distinct, "
            f"answers {stats.statuses} (expected {n} distinct, all 201)"
        )
    last = max(r.received_at for r in accepted)
    first_request = min(r.received_at for r in accepted)
    rss = sampler.max_where("worker.process")
    return {
        "contacts": n,
        "enqueued": enqueued,
        "enqueue_seconds": enqueue_seconds,
        "queued_bytes_per_contact": queued_bytes / n,
        "requests": len(accepted),
        "mean_batch": n / len(accepted),
        "contacts_per_s": n / (last - started.first_consumer),
        "contacts_per_s_from_spawn": n / (last - started.spawned),
        "contacts_per_s_from_first_request": n / (last - first_request),
        "start_up_seconds": started.first_consumer - started.spawned,
        "consumers_spread_seconds": started.all_consumers - started.first_consumer,
        "detected_done_after_last_request_seconds": done - last,
        "worker_cpu_seconds": cpu,
        "worker_cpu_seconds_from_spawn": cpu_total,
        "redis_cpu_seconds": redis_cpu,
        "worker_cpu_per_1k": cpu / n * 1000,
        "redis_cpu_per_1k": redis_cpu / n * 1000,
        "harness_cpu_per_1k": harness_cpu / n * 1000,
        "machine_busy_share": busy,
        "max_rss_bytes_per_worker_process": sorted(rss.values()),
    }


def floor_run(bench: Bench, n: int, processes: int, threads: int, prefetch: int) -> dict[str, Any]:
    bench.reset()
    bench.enqueue_singles(contact_rows(n, THROUGHPUT_TEMPLATES))
    before = bench.consumers()
    spawned = time.time()
    group = bench.start_module(
        "benchmarks.noop", processes, threads, prefetch_env(prefetch, threads), "floor"
    )
    started = group_started(group, spawned)
    try:
        watch_start(bench, started, before, processes)
        done = wait_until(
            lambda: bench.client.hlen(MESSAGES_KEY) == 0,
            started,
            max(120.0, n / 500),
            "the no-op actor to ack every message",
            interval=0.01,
        )
        cpu = group_cpu_seconds(started.pgid) - started.cpu_at_first
        redis_cpu = bench.redis_cpu_seconds() - started.redis_cpu_at_first
        busy = busy_share(started.machine_at_first)
    finally:
        group.kill()
    return {
        "contacts": n,
        "contacts_per_s": n / (done - started.first_consumer),
        "machine_busy_share": busy,
        "start_up_seconds": started.first_consumer - started.spawned,
        "worker_cpu_per_1k": cpu / n * 1000,
        "redis_cpu_per_1k": redis_cpu / n * 1000,
    }


# --- 3: naive, and both designs under a 5 requests/s limit -----------------------------------


def naive_run(bench: Bench, n: int, processes: int, threads: int) -> dict[str, Any]:
    bench.reset()
    bench.enqueue_singles(contact_rows(n, THROUGHPUT_TEMPLATES))
    before = bench.consumers()
    spawned = time.time()
    group = bench.start_module("benchmarks.naive", processes, threads, {}, "naive")
    started = group_started(group, spawned)
    try:
        watch_start(bench, started, before, processes)
        wait_until(
            lambda: bench.sandbox.stats().accepted_contacts >= n,
            started,
            max(120.0, n / 20),
            f"the naive actor to send {n} contacts",
        )
        cpu = group_cpu_seconds(started.pgid) - started.cpu_at_first
    finally:
        group.kill()
    accepted = bench.sandbox.accepted()
    last = max(r.received_at for r in accepted)
    return {
        "contacts": n,
        "requests": len(accepted),
        "contacts_per_s": n / (last - started.first_consumer),
        "worker_cpu_per_1k": cpu / n * 1000,
        "statuses": bench.sandbox.stats().statuses,
    }


LIMIT = 5.0


def limited_run(bench: Bench, seconds: float) -> dict[str, Any]:
    """The pipeline at LEVERS_MAX_REQUESTS_PER_SECOND=5, batches of 100, the sandbox enforcing
    the same limit with 429s; contacts/s over `seconds` of steady sending."""
    bench.reset()
    bench.sandbox.configure(rate_limit_per_second=LIMIT, retry_after_seconds=1.0)
    n = int(100 * LIMIT * (seconds + 10))
    bench.enqueue(contact_rows(n, THROUGHPUT_TEMPLATES))
    spawned = time.time()
    extra = {
        "LEVERS_MAX_REQUESTS_PER_SECOND": str(LIMIT),
        "LEVERS_BATCH_MAX_SIZE": "100",
        "LEVERS_LOG_LEVEL": "WARNING",
    }
    worker = bench.start_levers(1, 8, extra, "limited")
    started = levers_started(worker, spawned)
    try:
        wait_until(lambda: bool(bench.sandbox.stats().answers), started, 60, "a first request")
        first = bench.sandbox.stats().answers[0].received_at
        wait_until(lambda: time.time() > first + seconds + 0.3, started, seconds + 30, "the end")
    finally:
        worker.ensure_dead()
    window = [r for r in bench.sandbox.accepted() if r.received_at <= first + seconds]
    answers = [a for a in bench.sandbox.stats().answers if a.received_at <= first + seconds]
    if len(window) < 3:
        raise BenchError(f"only {len(window)} requests in {seconds:g} s at {LIMIT:g}/s")
    span = window[-1].received_at - window[0].received_at
    sizes = [len(r.body["contacts"]) for r in window]
    return {
        "seconds": seconds,
        "requests": len(window),
        "requests_per_s": (len(window) - 1) / span,
        "contacts_per_s": sum(sizes[1:]) / span,
        "mean_batch": statistics.fmean(sizes),
        "answers_429": sum(a.status == 429 for a in answers),
    }


# --- 4: producer rate ----------------------------------------------------------------------


def producer_run(bench: Bench, n: int) -> dict[str, Any]:
    """Three ways to put `n` contacts on the queue, each into an empty Redis."""
    bench.reset()
    accepted, pipelined_seconds = bench.enqueue(contact_rows(n, THROUGHPUT_TEMPLATES))
    # enqueue_contacts puts CHUNK_SIZE contacts in each message.
    if accepted != n or bench.client.hlen(MESSAGES_KEY) != -(-n // CHUNK_SIZE):
        raise BenchError(f"enqueue_contacts queued {accepted} of {n}")
    payloads = [
        validate_contact(row).to_message() for row in contact_rows(n, THROUGHPUT_TEMPLATES, first=n)
    ]
    broker = build_broker(bench.settings())
    try:
        bench.reset()
        started = time.perf_counter()
        for payload in payloads:
            broker.enqueue(contact_message(payload))
        loop_seconds = time.perf_counter() - started
        if bench.client.hlen(MESSAGES_KEY) != n:
            raise BenchError("the broker.enqueue loop did not queue every contact")
        # The same pre-validated payloads, pipelined: what pipelining alone buys.
        bench.reset()
        started = time.perf_counter()
        for first in range(0, n, PIPELINE_SIZE):
            chunk = payloads[first : first + PIPELINE_SIZE]
            pipe = broker.client.pipeline(transaction=False)
            enqueue_pipelined(broker, (contact_message(p) for p in chunk), pipe)
            pipe.execute()
        prevalidated_seconds = time.perf_counter() - started
        if bench.client.hlen(MESSAGES_KEY) != n:
            raise BenchError("enqueue_pipelined did not queue every contact")
    finally:
        broker.close()
    pipelined, loop = n / pipelined_seconds, n / loop_seconds
    return {
        "contacts": n,
        "pipelined_contacts_per_s": pipelined,
        "loop_contacts_per_s": loop,
        "prevalidated_pipelined_contacts_per_s": n / prevalidated_seconds,
        "ratio": pipelined / loop,
    }


# --- 5: time bound -------------------------------------------------------------------------

MAX_WAIT_SECONDS = 1.0


PAUSE_SECONDS = 0.3


def appended_ms(bench: Bench, batch_key: str, number: str, timeout: float) -> int | None:
    """The append time (ms, worker clock) of a pending contact: its score in the batch key's
    arrival-order zset, read while it waits there for the time cut."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        score = bench.client.zscore(KEYS.order(batch_key), number)
        if score is not None:
            return int(score)
        time.sleep(0.002)
    return None


def lone_run(bench: Bench, samples: int, run: int) -> dict[str, Any]:
    """Lone contacts: each has a template of its own (so it is alone in its batch whatever the
    timing) and follows the previous one after a pause."""
    bench.reset()
    extra = {**FAST, "LEVERS_BATCH_MAX_WAIT_SECONDS": str(MAX_WAIT_SECONDS)}
    before = bench.consumers()
    worker = bench.start_levers(1, 8, extra, "lone")
    started = levers_started(worker, time.time())
    producer = Producer(bench.settings())
    calls: dict[str, tuple[float, int | None]] = {}  # contact id -> (producer call, appended ms)
    try:
        watch_start(bench, started, before, 1)
        time.sleep(0.5)  # the flusher thread starts right after the consumers
        templates = template_ids(samples, salt=f"lone-{run}")
        for i, template in enumerate(templates):
            number = f"+96655{9_000_000 + i:07d}"
            called = time.time()
            contact_id = producer.enqueue_contact(number, template_id=template)
            appended = appended_ms(bench, batch_key(template, False), number, MAX_WAIT_SECONDS)
            calls[contact_id] = (called, appended)
            time.sleep(max(0.0, called + PAUSE_SECONDS - time.time()))
        wait_until(
            lambda: bench.sandbox.stats().accepted_contacts >= samples,
            started,
            30,
            "every lone contact to reach the sandbox",
        )
    finally:
        producer.close()
        worker.ensure_dead()
    cut_ms: list[float] = []
    e2e_ms: list[float] = []
    wait_ms = MAX_WAIT_SECONDS * 1000
    for request in bench.sandbox.accepted():
        if len(request.body["contacts"]) != 1:
            raise BenchError("a lone contact shared its batch")
        tag = request.body["contacts"][0]["metadata"]["levers_batcher"]
        called, appended = calls[tag["contact_id"]]
        e2e_ms.append((request.received_at - called) * 1000 - wait_ms)
        created = bench.client.hget(KEYS.batch(tag["batch_id"]), "created_ms")
        if appended is None or created is None:
            raise BenchError(f"no append time or batch record for contact {tag['contact_id']}")
        cut_ms.append(int(created) - appended - wait_ms)
    return {
        "samples": len(cut_ms),
        "cut_late_ms": cut_ms,
        "e2e_late_ms": e2e_ms,
        "cut_p50_ms": percentile(cut_ms, 50),
        "cut_p99_ms": percentile(cut_ms, 99),
        "e2e_p50_ms": percentile(e2e_ms, 50),
        "e2e_p99_ms": percentile(e2e_ms, 99),
    }


# --- 6: memory -----------------------------------------------------------------------------


def key_bytes(client: redis.Redis, pattern: str) -> tuple[int, int]:
    """(keys, MEMORY USAGE summed, every element counted) of the keys matching `pattern`."""
    total, count = 0, 0
    for key in client.scan_iter(match=pattern, count=1000):
        total += int(client.memory_usage(key, samples=0) or 0)
        count += 1
    return count, total


def keyspace_tables(client: redis.Redis) -> int:
    """Bytes of the keyspace's own hash tables (main and expires), from MEMORY STATS."""
    db = client.memory_stats().get("db.0") or {}
    return int(db.get("overhead.hashtable.main", 0)) + int(db.get("overhead.hashtable.expires", 0))


def memory_run(bench: Bench, n: int, templates: int) -> dict[str, Any]:
    """`n` contacts over `templates` batch keys (each under the max size of 10,000), max wait
    an hour: every contact stays pending once the aggregator has appended it."""
    per_key = -(-n // templates)
    if per_key >= 10_000:
        raise BenchError(f"{per_key} contacts per batch key would cut a batch by size")
    bench.reset()
    empty = bench.used_memory()
    tables_empty = keyspace_tables(bench.client)
    bench.enqueue(contact_rows(n, templates))
    queued = bench.used_memory()
    queue_keys = key_bytes(bench.client, QUEUE_KEY + "*")
    extra = {
        **FAST,
        "LEVERS_BATCH_MAX_SIZE": "10000",
        "LEVERS_BATCH_MAX_WAIT_SECONDS": "3600",
    }
    before = bench.consumers()
    worker = bench.start_levers(2, 8, extra, "memory")
    started = levers_started(worker, time.time())
    try:
        watch_start(bench, started, before, 2)

        def all_appended() -> bool:
            appended = int(bench.client.hget(KEYS.stats, "contacts_appended") or 0)
            return appended >= n and bench.client.hlen(MESSAGES_KEY) == 0

        wait_until(all_appended, started, max(120.0, n / 300), "every contact to be appended")
        with_workers = bench.used_memory()
    finally:
        worker.ensure_dead()
    # Measured again once the workers' connections (and their buffers in Redis) are gone.
    deadline = time.monotonic() + 10
    while int(bench.client.info("clients")["connected_clients"]) > 1:
        if time.monotonic() > deadline:
            raise BenchError("worker connections to Redis did not close")
        time.sleep(0.05)
    pending = bench.used_memory()
    tables = keyspace_tables(bench.client) - tables_empty
    pending_keys = key_bytes(bench.client, KEYS.pending("*"))
    order_keys = key_bytes(bench.client, KEYS.order("*"))
    msg_keys = key_bytes(bench.client, KEYS.message("*"))
    dedupe_keys = key_bytes(bench.client, f"{NAMESPACE}:dedupe:*")
    batches = bench.client.zcard(KEYS.inflight)
    if pending_keys[0] != templates or batches:
        raise BenchError(f"{pending_keys[0]} pending keys and {batches} batches cut")
    return {
        "contacts": n,
        "batch_keys": templates,
        "used_memory_empty": empty,
        "used_memory_queued": queued,
        "used_memory_pending": pending,
        "used_memory_pending_workers_connected": with_workers,
        "pending_bytes_per_contact_workers_connected": (with_workers - empty) / n,
        "queued_bytes_per_contact": (queued - empty) / n,
        "queue_keys_bytes_per_contact": queue_keys[1] / n,
        "pending_bytes_per_contact": (pending - empty) / n,
        "buffer_bytes_per_contact": (pending_keys[1] + order_keys[1]) / n,
        "markers_bytes_per_contact": (msg_keys[1] + dedupe_keys[1]) / n,
        "marker_keys": msg_keys[0] + dedupe_keys[0],
        "keyspace_tables_bytes_per_contact": tables / n,
    }


# --- machine -------------------------------------------------------------------------------


def installed_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(bench: Bench) -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "arch": platform.machine(),
        "python": platform.python_version(),
        "dramatiq": dramatiq.__version__,
        "redis_py": redis.__version__,
        "hiredis": installed_version("hiredis"),
        "redis_server": bench.client.info("server")["redis_version"],
    }


# --- the code under test ------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
CODE_PATHS = ("worker", "producers", "tests/servers.py", "tests/workers.py")


def code_fingerprint() -> str:
    """A digest of every file the benchmark runs (not the benchmarks themselves) and of the
    installed packages, to notice the code or the environment changing under a run."""
    digest = hashlib.sha1()
    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    digest.update("\n".join(installed).encode())
    for top in CODE_PATHS:
        root = REPO / top
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def code_version() -> str:
    """The commit checked out, and which files under test differ from it (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", *CODE_PATHS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


# --- the run -------------------------------------------------------------------------------

CONFIGS = [
    (1, 8, DEFAULT_PREFETCH),
    (2, 8, DEFAULT_PREFETCH),
    (1, 8, PREFETCH_256),
    (2, 8, PREFETCH_256),
]
NAIVE_CONFIGS = [(1, 8), (2, 8)]


@dataclass
class Results:
    sizes: Sizes
    machine: dict[str, Any] = field(default_factory=dict)
    code: dict[str, str] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, run: dict[str, Any]) -> None:
        self.runs.setdefault(name, []).append(run)

    def stat(self, name: str, key: str) -> Stat | None:
        values = tuple(float(r[key]) for r in self.runs.get(name, []))
        return Stat(values) if values else None

    def ratio(self, top: str, bottom: str, key: str = "contacts_per_s") -> Stat | None:
        """Ratio of the two figures within each repetition that measured both."""
        bottoms = {r["rep"]: float(r[key]) for r in self.runs.get(bottom, [])}
        values = tuple(
            float(r[key]) / bottoms[r["rep"]] for r in self.runs.get(top, []) if r["rep"] in bottoms
        )
        return Stat(values) if values else None


def attempt(results: Results, section: str, rep: int, action: Callable[[], dict[str, Any]]) -> None:
    """Run one part; a failure is recorded against its section and the suite goes on."""
    started = time.monotonic()
    try:
        results.add(section, {**action(), "rep": rep})
    except Exception as exc:
        results.errors[section] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        traceback.print_exc()
    finally:
        results.seconds[section] = results.seconds.get(section, 0.0) + time.monotonic() - started


def run_suite(
    bench: Bench, sizes: Sizes, results: Results, progress: Callable[[str], None]
) -> None:
    results.machine = machine(bench)
    n = sizes.contacts
    for rep in range(sizes.runs):
        step = f"run {rep + 1}/{sizes.runs}"
        for processes, threads, prefetch in CONFIGS:
            label = config_label(processes, threads, prefetch)
            progress(f"{step}: pipeline and floor, {label}")
            attempt(
                results,
                f"pipeline {label}",
                rep,
                partial(pipeline_run, bench, n, processes, threads, prefetch),
            )
            attempt(
                results,
                f"floor {label}",
                rep,
                partial(floor_run, bench, n, processes, threads, prefetch),
            )
        for processes, threads in NAIVE_CONFIGS:
            progress(f"{step}: naive, {processes}x{threads}")
            attempt(
                results,
                f"naive {processes}x{threads}",
                rep,
                partial(naive_run, bench, sizes.naive_contacts, processes, threads),
            )
        progress(f"{step}: pipeline under {LIMIT:g} requests/s")
        attempt(results, "limited", rep, partial(limited_run, bench, sizes.limited_seconds))
        progress(f"{step}: producer rate")
        attempt(results, "producer", rep, partial(producer_run, bench, sizes.producer_contacts))
        progress(f"{step}: time bound")
        attempt(results, "lone", rep, partial(lone_run, bench, sizes.lone_contacts, rep))
    progress(f"memory: {sizes.memory_contacts:,} contacts pending")
    attempt(
        results,
        "memory",
        0,
        partial(memory_run, bench, sizes.memory_contacts, sizes.memory_templates),
    )


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    figure: str
    config: str
    median: str
    spread: str = ""
    goal: str = ""
    met: str = ""


def fmt(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "%":
        return f"{value * 100:.0f} %"
    return f"{value:g}"


def stat_row(
    figure: str,
    config: str,
    stat: Stat | None,
    unit: str,
    *,
    goal: str = "",
    check: Callable[[float], bool] | None = None,
    missing: str = "not measured",
) -> Row:
    if stat is None:
        return Row(figure, config, missing, "", goal, "n/a" if goal else "")
    spread = f"{fmt(stat.low, unit)} - {fmt(stat.high, unit)} (n={len(stat.values)})"
    met = ""
    if check is not None:
        met = "met" if check(stat.median) else "NOT met"
    return Row(figure, config, fmt(stat.median, unit), spread, goal, met)


def why(results: Results, *sections: str) -> str:
    for section in sections:
        if section in results.errors:
            return f"not measured: {results.errors[section]}"
    return "not measured"


def table_rows(results: Results) -> list[Row]:
    m = results.machine
    s = results.sizes
    rows = [
        Row("machine", "cores / CPU", f"{m.get('cores')} x {m.get('cpu')} ({m.get('arch')})"),
        Row(
            "machine",
            "versions",
            f"Python {m.get('python')}, dramatiq {m.get('dramatiq')}, "
            f"redis-py {m.get('redis_py')} (hiredis {m.get('hiredis')}), "
            f"redis-server {m.get('redis_server')}",
        ),
    ]
    # 1. throughput
    for processes, threads, prefetch in CONFIGS:
        label = config_label(processes, threads, prefetch)
        pipe, floor = f"pipeline {label}", f"floor {label}"
        rows.append(
            stat_row(
                "1 throughput: pipeline",
                label,
                results.stat(pipe, "contacts_per_s"),
                "/s",
                missing=why(results, pipe),
            )
        )
        rows.append(
            stat_row(
                "1 throughput: floor (no-op actor)",
                label,
                results.stat(floor, "contacts_per_s"),
                "/s",
                missing=why(results, floor),
            )
        )
        rows.append(
            stat_row(
                "1 pipeline / floor",
                label,
                results.ratio(pipe, floor),
                "x",
                missing=why(results, pipe, floor),
            )
        )
    # 2. CPU
    for processes, threads, prefetch in CONFIGS:
        label = config_label(processes, threads, prefetch)
        pipe = f"pipeline {label}"
        rows.append(
            stat_row(
                "2 worker CPU per 1,000 contacts",
                label,
                results.stat(pipe, "worker_cpu_per_1k"),
                "s",
                missing=why(results, pipe),
            )
        )
        rows.append(
            stat_row(
                "2 Redis CPU per 1,000 contacts",
                label,
                results.stat(pipe, "redis_cpu_per_1k"),
                "s",
                missing=why(results, pipe),
            )
        )
        rows.append(
            stat_row(
                "2 sandbox + harness CPU per 1,000 contacts",
                label,
                results.stat(pipe, "harness_cpu_per_1k"),
                "s",
                missing=why(results, pipe),
            )
        )
        rows.append(
            stat_row(
                "2 machine busy (share of both cores)",
                label,
                results.stat(pipe, "machine_busy_share"),
                "%",
                missing=why(results, pipe),
            )
        )
    # 3. naive
    for processes, threads in NAIVE_CONFIGS:
        name = f"naive {processes}x{threads}"
        label = config_label(processes, threads, DEFAULT_PREFETCH)
        rows.append(
            stat_row(
                "3 naive (1 request per contact)",
                f"{label}, {s.naive_contacts:,} contacts",
                results.stat(name, "contacts_per_s"),
                "/s",
                missing=why(results, name),
            )
        )
        rows.append(
            stat_row(
                "3 pipeline / naive",
                label,
                results.ratio(f"pipeline {label}", name),
                "x",
                missing=why(results, f"pipeline {label}", name),
            )
        )
    goal_limited = 0.95 * 100 * LIMIT
    rows.append(
        stat_row(
            f"3 pipeline at {LIMIT:g} requests/s",
            f"1x8, batches of 100, {s.limited_seconds:g} s steady",
            results.stat("limited", "contacts_per_s"),
            "/s",
            goal=f">= {goal_limited:,.0f}/s",
            check=lambda v: v >= goal_limited,
            missing=why(results, "limited"),
        )
    )
    rows.append(
        stat_row(
            f"3 pipeline at {LIMIT:g} requests/s: 429s",
            "answers 429 by the sandbox's own limit",
            results.stat("limited", "answers_429"),
            "",
            missing=why(results, "limited"),
        )
    )
    rows.append(
        Row(
            f"3 naive at {LIMIT:g} requests/s",
            "computed: 1 contact per request",
            fmt(LIMIT, "/s"),
            "(exact by construction)",
        )
    )
    # 4. producer
    rows.append(
        stat_row(
            "4 producer: Producer.enqueue_contacts",
            f"{s.producer_contacts:,} contacts, pipelined 500/round trip",
            results.stat("producer", "pipelined_contacts_per_s"),
            "/s",
            missing=why(results, "producer"),
        )
    )
    rows.append(
        stat_row(
            "4 producer: loop of broker.enqueue",
            f"{s.producer_contacts:,} contacts, 1/round trip",
            results.stat("producer", "loop_contacts_per_s"),
            "/s",
            missing=why(results, "producer"),
        )
    )
    rows.append(
        stat_row(
            "4 producer: enqueue_pipelined, pre-validated",
            f"{s.producer_contacts:,} contacts, 500/round trip, no validation",
            results.stat("producer", "prevalidated_pipelined_contacts_per_s"),
            "/s",
            missing=why(results, "producer"),
        )
    )
    rows.append(
        stat_row(
            "4 producer: pipelined / loop",
            "",
            results.stat("producer", "ratio"),
            "x",
            goal=">= 4x",
            check=lambda v: v >= 4,
            missing=why(results, "producer"),
        )
    )
    # 5. time bound
    lone = f"1x8, max wait {MAX_WAIT_SECONDS:g} s, {s.lone_contacts} lone contacts/run"
    for key, figure in (
        ("cut_p50_ms", "5 cut lateness p50"),
        ("cut_p99_ms", "5 cut lateness p99"),
        ("e2e_p50_ms", "5 end-to-end lateness p50"),
        ("e2e_p99_ms", "5 end-to-end lateness p99"),
    ):
        p99 = key.endswith("p99_ms")
        rows.append(
            stat_row(
                figure,
                lone,
                results.stat("lone", key),
                "ms",
                goal="<= 100 ms" if p99 else "",
                check=(lambda v: v <= 100) if p99 else None,
                missing=why(results, "lone"),
            )
        )
    # 6. memory
    mem = f"{s.memory_contacts:,} contacts, {s.memory_templates} batch keys"
    rows.append(
        stat_row(
            "6 Redis bytes per pending contact",
            f"{mem}, used_memory delta",
            results.stat("memory", "pending_bytes_per_contact"),
            "B",
            goal="<= 400 B",
            check=lambda v: v <= 400,
            missing=why(results, "memory"),
        )
    )
    rows.append(
        stat_row(
            "6   same, worker connections still open",
            "2x8 workers connected (client buffers)",
            results.stat("memory", "pending_bytes_per_contact_workers_connected"),
            "B",
            missing=why(results, "memory"),
        )
    )
    rows.append(
        stat_row(
            "6   of which pending buffers",
            "pending hash + order zset, MEMORY USAGE",
            results.stat("memory", "buffer_bytes_per_contact"),
            "B",
            missing=why(results, "memory"),
        )
    )
    rows.append(
        stat_row(
            "6   of which dedupe + redelivery markers",
            "msg:* and dedupe:* keys, MEMORY USAGE",
            results.stat("memory", "markers_bytes_per_contact"),
            "B",
            missing=why(results, "memory"),
        )
    )
    rows.append(
        stat_row(
            "6   of which keyspace tables",
            "main + expires dicts, MEMORY STATS",
            results.stat("memory", "keyspace_tables_bytes_per_contact"),
            "B",
            missing=why(results, "memory"),
        )
    )
    queued = tuple(
        float(r["queued_bytes_per_contact"])
        for name, runs in results.runs.items()
        if name.startswith("pipeline ")
        for r in runs
    )
    rows.append(
        stat_row(
            "6 Redis bytes per contact in the dramatiq queue",
            f"{s.contacts:,} queued, before any worker",
            Stat(queued) if queued else None,
            "B",
            missing=why(results, *(f"pipeline {config_label(*c)}" for c in CONFIGS)),
        )
    )
    for prefetch in (DEFAULT_PREFETCH, PREFETCH_256):
        label = config_label(2, 8, prefetch)
        name = f"pipeline {label}"
        values = tuple(
            max(r["max_rss_bytes_per_worker_process"]) / MB for r in results.runs.get(name, [])
        )
        rows.append(
            stat_row(
                "6 worker RSS per process (max)",
                f"{label}, throughput run",
                Stat(values) if values else None,
                "MB",
                goal="<= 120 MB",
                check=lambda v: v <= 120,
                missing=why(results, name),
            )
        )
    return rows


NOTES = """\
Definitions:
* throughput = contacts / (time the sandbox received the last request - time the first worker
  process sent dramatiq its first command). The queue is filled with Producer.enqueue_contacts
  before any worker starts; start-up (interpreter, imports) is excluded, the whole drain and
  every send included. The floor is timed the same way until the queue's .msgs hash is empty
  (every message acked). The JSON also has the rate from the spawn and from the first request.
  Each run holds a whole number of batches of 100 per template, so no tail waits for the time
  cut; the size is smaller than 100,000 so that the suite ends within 10 minutes on 2 cores
  (100,000 x 4 configs x 2 systems x 3 runs alone would take about 20 minutes); pass
  --contacts 100000 --runs 1 for one full-size pass.
* pipeline = levers-worker (python -m worker.cli --processes N --threads 8: 8 aggregator and 8
  sender threads per process), LEVERS_MAX_REQUESTS_PER_SECOND=10000, LEVERS_MAX_IN_FLIGHT=0,
  LEVERS_BATCH_MAX_SIZE=100, LEVERS_LOG_LEVEL=WARNING, metrics endpoint off (dramatiq's Prometheus
  middleware on, as shipped). The sandbox answers 201 at once and runs in the benchmark's own
  process, on the same 2 cores.
* prefetch = messages each consumer fetches ahead, in both pools (contacts and sends): the
  pipeline gets it through LEVERS_CONTACTS_PREFETCH (contacts pool) and dramatiq_queue_prefetch
  (sender pool), the floor through dramatiq_queue_prefetch. levers-worker ships with
  LEVERS_CONTACTS_PREFETCH=256 and dramatiq's default for sends: the limited, time-bound
  and memory runs use that; naive uses dramatiq's default.
* floor = benchmarks.noop: same broker, queue, processes, thread pools and 100 ms idle poll,
  an actor that does nothing, no Prometheus middleware, one message per contact (what a
  one-contact-per-message design would cost). The pipeline's producer puts 50 contacts in a
  message (Producer.enqueue_contacts), which is why it can pass this floor.
* CPU = utime+stime of every process of the worker's process group (/proc), Redis
  used_cpu_sys+used_cpu_user, and this process (sandbox threads, pollers), from the first
  consumer command until the last contact arrived; machine busy = non-idle share of all cores
  (/proc/stat) over the same span.
* naive = benchmarks.naive: validates each contact and POSTs it alone (httpx, one token per
  process); same layout and default prefetch. Under a limit of 5 requests/s it sends at most 5
  contacts/s: computed, not run. The pipeline's limited figure = contacts of the 2nd..last request
  / time from the 1st to the last request, within the first N s of sending; the sandbox enforces
  the same 5/s limit (429) meanwhile.
* producer: enqueue_contacts validates every row (phonenumbers); the loop enqueues payloads
  validated beforehand (broker.enqueue(contact_message(payload)), as actor.send would), so the
  ratio favours the loop; the pre-validated row pipelines those same payloads.
* time bound: each lone contact has a template of its own and follows the previous one by 0.3 s;
  cut lateness = batch record's created_ms - the contact's append time (its score in the batch
  key's order zset, read while it is pending: finished records no longer keep their contacts) -
  max wait, both worker clocks; end-to-end = sandbox arrival - producer call - max wait. p99 of
  20-30 samples is about their maximum.
* memory: used_memory once the aggregator appended every contact (max size 10000, max wait
  3600 s, so nothing is cut) and the workers disconnected, minus used_memory of the empty Redis;
  includes the per-contact markers that outlive the pending entry (dedupe:*, kept for
  LEVERS_DEDUPE_WINDOW_SECONDS, and msg:* redelivery markers where the code under test still
  writes them) and the keyspace's own tables.
  Dramatiq queue bytes = used_memory after enqueue minus empty. RSS = the largest VmRSS, sampled
  every 0.25 s, of any worker.process process."""


def render(results: Results, total_seconds: float) -> str:
    rows = table_rows(results)
    s = results.sizes
    header = Row("figure", "config", "median", "spread min - max (runs)", "goal", "met")
    cells = [header, *rows]
    widths = [max(len(getattr(r, f)) for r in cells) for f in Row.__dataclass_fields__]

    def line(row: Row) -> str:
        values = [getattr(row, f) for f in Row.__dataclass_fields__]
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    code = results.code
    changed = code.get("fingerprint_start") != code.get("fingerprint_end")
    out = [
        f"levers-batcher benchmark suite: {s.runs} run(s) per figure, {s.contacts:,} contacts "
        f"per throughput run over 3 templates ({CONTACT_SHAPE}), {total_seconds:.0f} s in all",
        f"code under test: {code.get('version_start')}"
        + (
            f"; WARNING: it changed during the run (now {code.get('version_end')}): "
            "figures may mix versions"
            if changed
            else ""
        ),
        "",
        line(header),
        "| " + " | ".join("-" * w for w in widths) + " |",
        *(line(r) for r in rows),
        "",
        NOTES,
    ]
    if results.errors:
        out += ["", "Not measured:"]
        out += [f"* {section}: {error}" for section, error in results.errors.items()]
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 run")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3; quick 1)")
    parser.add_argument("--contacts", type=int, help="contacts per throughput run")
    parser.add_argument("--memory-contacts", type=int, help="contacts pending in the memory run")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs:
        sizes = Sizes(**{**sizes.__dict__, "runs": args.runs})
    if args.contacts:
        # Whole batches only: a last partial batch per template would wait for the time cut
        # (LEVERS_BATCH_MAX_WAIT_SECONDS) and add that wait to the measured drain.
        whole = max(1, round(args.contacts / FULL_ROUND)) * FULL_ROUND
        sizes = Sizes(**{**sizes.__dict__, "contacts": whole})
    if args.memory_contacts:
        sizes = Sizes(**{**sizes.__dict__, "memory_contacts": args.memory_contacts})
    signal.signal(signal.SIGTERM, _stop)

    began = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="levers-bench-"))
    results = Results(sizes)
    server = RedisServer(work / "redis")
    sandbox = Sandbox(SandboxConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET))
    bench: Bench | None = None
    try:
        server.start()
        sandbox.start()
        bench = Bench(work, server, sandbox, redis.Redis.from_url(server.url))
        results.code = {"version_start": code_version(), "fingerprint_start": code_fingerprint()}
        run_suite(bench, sizes, results, progress)
        results.code.update(version_end=code_version(), fingerprint_end=code_fingerprint())
    finally:
        if bench is not None:
            bench.stop_all()
            bench.client.close()
        sandbox.stop()
        server.stop()
    total = time.monotonic() - began
    print()
    print(render(results, total))
    if args.json:
        payload = {
            "sizes": sizes.__dict__,
            "machine": results.machine,
            "code": results.code,
            "runs": results.runs,
            "errors": results.errors,
            "section_seconds": results.seconds,
            "total_seconds": total,
            "logs": str(work),
        }
        args.json.write_text(json.dumps(payload, indent=2, sort_keys=True))
        print(f"\nraw results: {args.json}")
    return 1 if results.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
