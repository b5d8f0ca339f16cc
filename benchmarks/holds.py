"""Contacts held overnight, released when their window opens: how fast, how full, how costly.

    python -m benchmarks.holds [--contacts 100000] [--rate 20] [--batch 100]

Enqueues the contacts with one not_before (the "opening", a fixed time the same for all: what a
window opening at 09:00 does to a night's backlog), lets real workers hold them all, then
measures, from the opening:

* the delay until the first request reaches the sandbox (goal: within 1 s);
* the achieved request rate against LEVERS_MAX_REQUESTS_PER_SECOND, and how full the batches are;
* Redis bytes per held contact (used_memory with everything held, minus before);
* the latency of an append of a new contact while the release runs (it must not be blocked):
  a probe appends single contacts through append.lua every 20 ms and times each call.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis

from producers.api import Producer
from tests.servers import RedisServer, free_port
from tests.workers import WorkerProcess
from worker.buffers import BufferConfig, Buffers
from worker.contacts import Contact
from worker.holds import Holds
from worker.keys import Keys
from worker.sandbox import Sandbox, SandboxConfig
from worker.settings import Settings

# The probe's contacts go under a template of their own, so their requests are told apart.
PROBE = "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s allowed")
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="levers-holds-"))
    server = RedisServer(work / "redis").start()
    sandbox = Sandbox(SandboxConfig(client_id="bench", client_secret="bench-secret"))
    sandbox.start()
    client = redis.Redis.from_url(server.url)
    namespace = f"holds-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVERS_")}
    env.update(
        {
            "REDIS_URL": server.url,
            "LEVERS_NAMESPACE": namespace,
            "LEVERS_BASE_URL": sandbox.url,
            "LEVERS_CLIENT_ID": "bench",
            "LEVERS_CLIENT_SECRET": "bench-secret",
            "LEVERS_DEFAULT_WINDOW": "always",  # the not_before is the opening here
            "LEVERS_BATCH_MAX_SIZE": str(args.batch),
            "LEVERS_MAX_REQUESTS_PER_SECOND": str(args.rate),
            "LEVERS_METRICS_PORT": str(free_port()),
            "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        }
    )
    settings = Settings.from_env(env)
    keys = Keys(namespace)
    holds = Holds(client, keys, BufferConfig(batch_max_size=args.batch))
    worker = WorkerProcess(env, work / "worker.log", processes=2, threads=8)
    try:
        base = int(client.info("memory")["used_memory"])
        worker.start()
        worker.wait_ready()
        producer = Producer(settings)
        # Time to enqueue and hold everything first (aggregation runs at 2,000-10,000
        # contacts/s on two cores, depending on what else runs).
        opening = time.time() + 15 + args.contacts / 1_500
        rows = [{"number": f"+9665{i:08d}", "not_before": opening} for i in range(args.contacts)]
        started = time.monotonic()
        result = producer.enqueue_contacts(rows)
        producer.close()
        assert len(result.accepted) == args.contacts, result.rejected[:3]
        while holds.counts()["not_before"] < args.contacts:
            if time.time() > opening - 1:
                raise SystemExit("not every contact was held before the opening: use fewer")
            time.sleep(0.1)
        held_after = time.monotonic() - started
        per_held = (int(client.info("memory")["used_memory"]) - base) / args.contacts
        print(f"{args.contacts:,} contacts held in {held_after:.1f} s; {per_held:.0f} B each")

        probe = Buffers(client, keys, BufferConfig(batch_max_size=args.batch))
        probe_times: list[float] = []
        stop = threading.Event()

        def append_probe() -> None:
            i = 0
            while not stop.is_set():
                contact = Contact(number=f"+9665{90_000_000 + i:08d}", template_id=PROBE)
                t0 = time.perf_counter()
                probe.append(contact, f"probe-{i}")
                probe_times.append(time.perf_counter() - t0)
                i += 1
                stop.wait(0.02)

        while time.time() < opening - 0.5:
            time.sleep(0.05)
        thread = threading.Thread(target=append_probe, daemon=True)
        thread.start()

        def released() -> int:  # the held contacts sent so far (the probe's are told apart)
            return sum(
                len(r.body["contacts"])
                for r in sandbox.accepted()
                if "aiSettingsTemplateId" not in r.body
            )

        while released() < args.contacts:
            if time.time() > opening + 30 + args.contacts / (args.rate * args.batch) * 1.5:
                raise SystemExit("the release did not finish in time")
            time.sleep(0.2)
        stop.set()
        thread.join()
        requests = [r for r in sandbox.accepted() if "aiSettingsTemplateId" not in r.body]
        probes = len(sandbox.accepted()) - len(requests)
        arrivals = sorted(r.received_at for r in requests)
        sizes = [len(r.body["contacts"]) for r in requests]
        span = arrivals[-1] - arrivals[0]
        achieved = (len(arrivals) - 1) / span if span > 0 else float("nan")
        full = sum(1 for s in sizes if s == args.batch)
        print(f"first request {arrivals[0] - opening:+.3f} s after the opening (goal <= 1 s)")
        print(
            f"{len(arrivals)} requests in {span:.1f} s: {achieved:.2f} requests/s of "
            f"{args.rate:g} allowed ({achieved / args.rate:.3f} of the limit; the probe's "
            f"{probes} requests shared it)"
        )
        print(f"full batches: {full} of {len(sizes)}; mean size {statistics.mean(sizes):.1f}")
        print(
            f"append latency during the release: p50 {percentile(probe_times, 0.5) * 1000:.2f} ms,"
            f" p99 {percentile(probe_times, 0.99) * 1000:.2f} ms, max "
            f"{max(probe_times) * 1000:.2f} ms over {len(probe_times)} appends"
        )
    finally:
        worker.stop()
        worker.ensure_dead()
        sandbox.stop()
        server.stop()


if __name__ == "__main__":
    main()
