"""Profile the aggregator's per-contact path (validate + append Lua) in one process.

    python -m benchmarks.profile_aggregate [--contacts 20000] [--top 20]

Starts its own redis-server, runs `Aggregator.handle` for N contacts under cProfile, and prints
microseconds per contact and the functions that took the most time. This is how the hot path
was found: with plain redis-py, packing the 24 parts of each EVALSHA in Python was the largest
item (340-380 us per contact under the profiler); with hiredis packing in C, 274-283 us.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    # Metrics in multiprocess mode, as in a worker: set before prometheus_client is imported.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="levers-profile-")

    import redis
    from dramatiq.brokers.stub import StubBroker

    from worker.aggregator import Aggregator
    from worker.backlog import QueuedContacts
    from worker.broker import BATCHES_QUEUE
    from worker.buffers import BufferConfig, Buffers
    from worker.keys import Keys
    from worker.local import RedisServer
    from worker.metrics import Metrics
    from worker.outbox import Outbox, OutboxConfig
    from worker.rejects import Rejects

    server = RedisServer(Path(tempfile.mkdtemp(prefix="levers-profile-redis-"))).start()
    try:
        client, keys = redis.Redis.from_url(server.url), Keys("profile")
        broker = StubBroker()
        broker.declare_queue(BATCHES_QUEUE)
        aggregator = Aggregator(
            Buffers(client, keys, BufferConfig()),
            Outbox(client, keys, OutboxConfig(), broker),
            Rejects(client, keys),
            QueuedContacts(client, keys),
            Metrics(),
        )
        payloads = [
            {
                "number": f"+96655{i:07d}",
                "first_name": "Sara",
                "template_id": "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10",
            }
            for i in range(args.contacts)
        ]
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        for i, payload in enumerate(payloads):
            aggregator.handle(payload, f"m{i}")
        profile.disable()
        elapsed = time.perf_counter() - started
        each_us = elapsed / args.contacts * 1e6
        print(f"{args.contacts / elapsed:,.0f} contacts/s, {each_us:.0f} us each")
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
