"""What frequency caps cost in Redis: bytes per number called, with the default caps.

    python -m benchmarks.caps [--numbers 100000]

Caps count the calls recorded against each number: one sorted set per number
(`Keys.calls`), a member "template|first 16 characters of the batch id" per call, kept for the
longest cap period (30 days by default) and trimmed to it on every call. This records calls
through the same `record_call` that begin.lua runs (worker/lua/gates.lua) in a redis-server of
its own, and prints used_memory per number for one call each (the common case: the default
caps allow one a day) and for ten (the most the default 10-in-30-days cap lets a number
gather).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from importlib import resources
from pathlib import Path

import redis

from worker.keys import Keys
from worker.local import RedisServer
from worker.policy.caps import DEFAULT_CAPS

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
RECORD = """
for i = 1, #KEYS do
  record_call(KEYS[i], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
end
return #KEYS
"""


def record_script(client: redis.Redis) -> object:
    gates = resources.files("worker").joinpath("lua", "gates.lua").read_text("utf-8")
    return client.register_script(gates + RECORD)


def measure(client: redis.Redis, numbers: int, calls: int, ttl_ms: int) -> float:
    client.flushall()
    before = int(client.info("memory")["used_memory"])
    record = record_script(client)
    keys = Keys("bench")
    now_ms = int(time.time() * 1000)
    chunk = 500
    for call in range(calls):
        batch_id = uuid.uuid4().hex
        # Calls a gap apart, as the default 4-hour gap would space them.
        at = now_ms - (calls - call) * 4 * 3_600_000
        for start in range(0, numbers, chunk):
            names = [keys.calls(f"+9665{start + i:08d}") for i in range(chunk)]
            record(keys=names, args=[TEMPLATE, batch_id, at, ttl_ms])  # type: ignore[operator]
    after = int(client.info("memory")["used_memory"])
    return (after - before) / numbers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=100_000)
    args = parser.parse_args()
    server = RedisServer(Path(tempfile.mkdtemp(prefix="levers-caps-")) / "redis").start()
    client = redis.Redis.from_url(server.url)
    ttl_ms = int(DEFAULT_CAPS.longest * 1000)
    try:
        for calls in (1, 10):
            per = measure(client, args.numbers, calls, ttl_ms)
            print(
                f"{args.numbers:,} numbers, {calls} call(s) each, kept {ttl_ms / 86_400_000:g} "
                f"days: {per:.0f} B per number"
            )
    finally:
        client.close()
        server.stop()


if __name__ == "__main__":
    main()
