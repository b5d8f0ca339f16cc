"""The loss window of a Redis failover: accepted contacts that the new primary does not have.

    python -m benchmarks.failover --scenario planned [--runs 1]   # about 40 s
    python -m benchmarks.failover --scenario kill [--runs 2] [--lag-ms 0]   # about 50 s

Each run starts a primary, one replica and three sentinels (tests/sentinels.py; failure
noticed after 1 s), and a producer thread that enqueues 10 new contacts per call, one call
every 2 ms, through Sentinel. Then:

* `planned`: `SENTINEL FAILOVER`; once the old primary has been made a replica (which discards
  what it took after the promotion), the contacts the producer was told were accepted are
  looked up on the new primary. Once with this project's client (worker/sentinel.py), once with
  redis-py's own Sentinel support, both with LEVERS_REDIS_MIN_REPLICAS=0.
* `kill`: SIGKILL of the primary; once the sentinels promote the replica, the killed server
  comes back as its replica and the accepted contacts are looked up. With
  LEVERS_REDIS_MIN_REPLICAS=0 and =1 (WAIT timeout 200 ms); with 1, `lost` counts only
  confirmed contacts, and `unconfirmed` the ones the producer was told to send again.
  `--lag-ms N` makes the replica fall N ms behind before the kill (paused, and the socket
  buffers to it filled with ballast: tests/sentinels.py `fall_behind`), as a slow network, a
  busy replica or a burst would.

A contact is found through the producer's own count of its message (`{ns}:queued`), which is
written in the same transaction as the message. Prints one line per run: contacts accepted,
lost (and over which span of time after the failover began), unconfirmed, calls that failed,
and the longest call.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Call:
    at: float  # seconds since the failover began (negative: before)
    seconds: float
    accepted: list[str] = field(default_factory=list)  # message ids
    unconfirmed: list[str] = field(default_factory=list)
    failed: bool = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.failover")
    parser.add_argument("--scenario", choices=["planned", "kill"], required=True)
    parser.add_argument("--runs", type=int, default=0, help="default: 1 planned, 2 kill")
    parser.add_argument("--lag-ms", type=int, default=0, help="kill: the replica's lag, ms")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.scenario == "planned" else 2)
    variants = (
        [("this project's client", "ours", 0), ("redis-py's Sentinel client", "plain", 0)]
        if args.scenario == "planned"
        else [
            ("LEVERS_REDIS_MIN_REPLICAS=0", "ours", 0),
            ("LEVERS_REDIS_MIN_REPLICAS=1", "ours", 1),
        ]
    )
    print(f"scenario {args.scenario}: producer calls of 10 contacts every 2 ms")
    for run in range(runs):
        for label, client, replicas in variants:
            outcome = one_run(args.scenario, client, replicas, args.lag_ms / 1000)
            print(f"run {run + 1}, {label}: {outcome}", flush=True)
    return 0


def one_run(scenario: str, client_kind: str, replicas: int, lag: float) -> str:
    import redis
    from redis.sentinel import Sentinel

    from producers.api import Producer
    from tests.sentinels import ReplicaSet
    from worker.broker import build_broker
    from worker.errors import NotReplicatedError
    from worker.keys import Keys
    from worker.settings import Settings

    servers = ReplicaSet(Path(tempfile.mkdtemp(prefix="levers-failover-"))).start()
    try:
        settings = Settings.from_env(
            {
                **servers.env(),
                "LEVERS_NAMESPACE": "failover",
                "LEVERS_REDIS_MIN_REPLICAS": str(replicas),
                "LEVERS_REDIS_WAIT_TIMEOUT_MS": "200",
            }
        )
        if client_kind == "plain":
            plain = Sentinel(settings.sentinel_addresses).master_for(settings.redis_sentinel_master)
            producer = Producer(settings, build_broker(settings, client=plain))
        else:
            producer = Producer(settings)
        calls: list[Call] = []
        began = [float("inf")]
        stop = threading.Event()

        def produce() -> None:
            n = 0
            while not stop.is_set():
                rows = [{"number": f"+96655{n + i:07d}"} for i in range(10)]
                n += 10
                started = time.monotonic()
                call = Call(started - began[0], 0.0)
                try:
                    result = producer.enqueue_contacts(rows)
                    unsure = {i for i, _ in result.unconfirmed}
                    ids = {cid.rsplit(":", 1)[0] for i, cid in result.accepted if i not in unsure}
                    call.accepted = sorted(ids)
                    call.unconfirmed = sorted({c.rsplit(":", 1)[0] for _, c in result.unconfirmed})
                    call.failed = bool(result.rejected)
                except (redis.RedisError, NotReplicatedError):
                    call.failed = True
                call.seconds = time.monotonic() - started
                calls.append(call)
                stop.wait(0.002)  # the producer's pace, not a wait for work

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        servers.wait_replicated(1)
        time.sleep(1.0)  # a second of calls before the failover, as a baseline
        old = servers.primary()
        began[0] = time.monotonic()
        if scenario == "planned":
            servers.start_failover()
            servers.wait_new_primary(old.port)
            servers.wait_role(old, "slave", timeout=60)  # what it took after is now gone
        else:
            [replica] = servers.replicas()
            if lag:
                servers.fall_behind(replica)
                time.sleep(lag)  # the replica falls behind by this much
            old.kill()
            servers.resume(replica)
            servers.wait_new_primary(old.port)
            servers.rejoin(old)
        time.sleep(1.0)  # a second of calls after it, as a baseline
        stop.set()
        thread.join(30)
        producer.close()

        check = redis.Redis.from_url(servers.primary().url)
        queued = Keys(settings.namespace).queued_messages
        lost: list[float] = []
        accepted = unconfirmed = failed = 0
        for call in calls:
            accepted += len(call.accepted) * 10
            unconfirmed += len(call.unconfirmed) * 10
            failed += call.failed
            if call.accepted:
                pipe = check.pipeline(transaction=False)
                for message_id in call.accepted:
                    pipe.hexists(queued, message_id)
                lost += [call.at] * 10 * sum(1 for found in pipe.execute() if not found)
        check.close()
        span = f" (from {min(lost):+.2f} s to {max(lost):+.2f} s)" if lost else ""
        longest = max(c.seconds for c in calls)
        return (
            f"{accepted:,} accepted, {len(lost):,} lost{span}, {unconfirmed:,} unconfirmed, "
            f"{failed:,} calls failed, longest call {longest:.2f} s"
        )
    finally:
        servers.stop()


if __name__ == "__main__":
    raise SystemExit(main())
