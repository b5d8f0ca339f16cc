"""Redis failover through Sentinel, mid-run: a primary, a replica and three sentinels on free
ports, real `levers-worker` processes and the sandbox over HTTP. Each test ends with a
reconciliation (reconcile.py): what was accepted is sent once or visibly dead-lettered.

The producer here does what a careful producer does: rows it was told may be lost (an error,
or `unconfirmed`) it sends again, with the same numbers, until an enqueue of them is
confirmed; the dedupe window drops the second one if the first survived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import redis

from producers.api import Producer
from tests.integration.reconcile import Reconciliation, settle
from tests.sentinels import ReplicaSet
from tests.servers import wait_for
from tests.workers import FAST_RECOVERY, WorkerProcess
from worker.backlog import read_backlog
from worker.broker import ReconnectWatch
from worker.connection import connect
from worker.deadletters import UNKNOWN_OUTCOME, DeadLetters
from worker.keys import Keys
from worker.sandbox import Sandbox
from worker.sentinel import FailoverAwareSentinel, FailoverInProgress, FollowingSentinelPool
from worker.settings import Settings

pytestmark = pytest.mark.integration

# A worker's messages come back soon after a broker id change; attempts end soon.
FAILOVER_ENV = {
    **FAST_RECOVERY,
    "LEVERS_BATCH_MAX_SIZE": "25",
    "LEVERS_MAX_REQUESTS_PER_SECOND": "20",
}
ROUNDS, ROW_COUNT = 30, 50
# The second half of the contacts is spread over this many seconds: a load, not a wait.
PACE_SECONDS = 0.1


@pytest.fixture
def replica_set(tmp_path: Path) -> Iterator[ReplicaSet]:
    servers = ReplicaSet(tmp_path / "replica-set", down_after_ms=1000).start()
    yield servers
    servers.stop()


class SteadyProducer:
    """Enqueues ROUNDS rounds of ROW_COUNT new numbers from a thread: the first half at once,
    then, once told to go on (the failover has begun), one round every PACE_SECONDS, so that
    enqueueing goes on through the failover. What it was not sure of it sends again.
    `accepted` holds the numbers whose enqueue was confirmed."""

    def __init__(self, settings: Settings) -> None:
        self.producer = Producer(settings)
        self.accepted: set[str] = set()
        self.retried = 0
        self.halfway = threading.Event()
        self.go_on = threading.Event()
        self.error: BaseException | None = None
        self._pace = threading.Event()  # never set: its wait is the pace of the second half
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SteadyProducer:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for round_ in range(ROUNDS):
                if round_ == ROUNDS // 2:
                    self.halfway.set()
                    if not self.go_on.wait(60):
                        raise AssertionError("never told to go on")
                if round_ > ROUNDS // 2:
                    self._pace.wait(PACE_SECONDS)
                todo = [f"+96656{round_ * ROW_COUNT + i:07d}" for i in range(ROW_COUNT)]
                wait_for(partial(self._enqueue, todo), 40, 0.05, "a confirmed enqueue")
        except BaseException as exc:  # reported by join()
            self.error = exc

    def _enqueue(self, todo: list[str]) -> bool:
        """Enqueue `todo`; keep in it what must be sent again. True once it is empty."""
        try:
            result = self.producer.enqueue_contacts([{"number": n} for n in todo])
        except redis.RedisError:
            self.retried += 1  # nothing reported: all of it again
            return False
        unsure = {i for i, _ in result.unconfirmed} | {r.index for r in result.rejected}
        self.accepted |= {todo[i] for i, _ in result.accepted if i not in unsure}
        todo[:] = [todo[i] for i in sorted(unsure)]
        self.retried += bool(todo)
        return not todo

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the producer did not finish"
        self.producer.close()
        if self.error is not None:
            raise self.error


def run_through_failover(
    replica_set: ReplicaSet,
    worker_env: dict[str, str],
    sandbox: Sandbox,
    start_worker: Callable[..., WorkerProcess],
    begin: Callable[[], object],
    end: Callable[[], object],
    on_start: Callable[[SteadyProducer], object] = lambda _: None,
    **env: str,
) -> tuple[SteadyProducer, Redis]:
    """A producer and two worker processes through Sentinel. Once requests go out and half the
    contacts are enqueued, the failover `begin`s and the other half is enqueued while it runs
    until its `end`; then the contacts are waited for."""
    env = {**replica_set.env(), **FAILOVER_ENV, **env}
    settings = Settings.from_env({**worker_env, **env})
    start_worker(2, 4, **env).wait_ready()
    producer = SteadyProducer(settings).start()
    on_start(producer)
    wait_for(
        lambda: producer.halfway.is_set() and len(sandbox.accepted()) >= 10,
        30,
        what="requests to start",
    )
    begin()
    producer.go_on.set()
    end()
    producer.join(60)
    return producer, Redis(settings)


class Redis:
    """What the test reads, from the primary the sentinels name (as the workers do)."""

    def __init__(self, settings: Settings) -> None:
        self.client = connect(settings)
        self.keys = Keys(settings.namespace)
        self.dead = DeadLetters(self.client, self.keys)

    def idle(self) -> bool:
        """Nothing queued (dramatiq's lists included), pending or in flight."""
        backlog = read_backlog(self.client, self.keys)
        return backlog.total == 0 and not any(backlog.queue_messages.values())

    def reconcile(self, sandbox: Sandbox, accepted: set[str]) -> Reconciliation:
        """Once every accepted contact went out or is dead, and then nothing is left to do:
        a contact sent twice may only show once the work of a lost primary is done again."""
        settle(sandbox, self.dead, accepted, timeout=40)
        wait_for(self.idle, 40, interval=0.1, what="nothing left queued, pending or in flight")
        return Reconciliation.take(sandbox, self.dead)


def test_a_planned_failover_loses_and_doubles_nothing(
    replica_set: ReplicaSet,
    worker_env: dict[str, str],
    sandbox: Sandbox,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """`SENTINEL FAILOVER` with the defaults (no WAIT): clients leave the old primary while
    the failover runs, so nothing is written where it would be lost."""
    old = replica_set.primary()
    producer, state = run_through_failover(
        replica_set,
        worker_env,
        sandbox,
        start_worker,
        replica_set.start_failover,
        lambda: replica_set.wait_new_primary(old.port),
    )
    # Whatever was written to the old primary after the promotion is gone once the sentinels
    # make it a replica (about 10 s later): only then is the outcome final.
    replica_set.wait_role(old, "slave", timeout=30)
    result = state.reconcile(sandbox, producer.accepted)
    result.check(producer.accepted)
    assert len(producer.accepted) == ROUNDS * ROW_COUNT
    assert set(result.dead_reasons) <= {UNKNOWN_OUTCOME}


def test_a_killed_primary_loses_nothing_accepted_with_min_replicas(
    replica_set: ReplicaSet,
    worker_env: dict[str, str],
    sandbox: Sandbox,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """SIGKILL of the primary while its replica lags behind, with LEVERS_REDIS_MIN_REPLICAS=1.

    The replica falls behind first (paused, the socket buffers to it full), which holds open
    the window that asynchronous replication always has: whatever the primary takes then is
    not on the replica the sentinels promote. Without WAIT, the producer would be told those
    contacts were accepted, and batches marked `sending` there would be sent again by the new
    primary. With it, the producer is told to send them again, and no batch leaves
    unconfirmed. Until the killed server is back as a replica, the new primary has none, so
    nothing moves; then all does."""
    old = replica_set.primary()
    [replica] = replica_set.replicas()
    producer: SteadyProducer | None = None

    def started(steady: SteadyProducer) -> None:
        nonlocal producer
        producer = steady

    def killed_then_promoted() -> None:
        # The producer's contacts reach the primary alone (it is told so), then it dies.
        wait_for(lambda: producer and producer.retried, 20, what="the producer to be told")
        old.kill()
        replica_set.resume(replica)
        replica_set.wait_new_primary(old.port)
        replica_set.rejoin(old)

    producer, state = run_through_failover(
        replica_set,
        worker_env,
        sandbox,
        start_worker,
        lambda: replica_set.fall_behind(replica),
        killed_then_promoted,
        on_start=started,
        LEVERS_REDIS_MIN_REPLICAS="1",
        LEVERS_REDIS_WAIT_TIMEOUT_MS="200",
    )
    result = state.reconcile(sandbox, producer.accepted)
    result.check(producer.accepted)
    assert len(producer.accepted) == ROUNDS * ROW_COUNT
    assert set(result.dead_reasons) <= {UNKNOWN_OUTCOME}


def test_a_client_follows_the_sentinels_through_a_failover(replica_set: ReplicaSet) -> None:
    """What the tests above rely on, one step at a time: while the failover runs there is no
    primary to write to; then every connection is on the new one, and the broker's watch has
    seen the change (so a worker fetches under a new broker id)."""
    settings = Settings.from_env({**replica_set.env(), "REDIS_URL": "redis://ignored:1/3"})
    watch = ReconnectWatch()
    client = connect(settings, on_connect=watch)
    pool = client.connection_pool
    assert isinstance(pool, FollowingSentinelPool)
    client.set("k", "before")
    old = replica_set.primary()
    assert pool.master_address == ("127.0.0.1", old.port) and not watch.take()

    replica_set.start_failover()
    sentinels = FailoverAwareSentinel(settings.sentinel_addresses)
    seen: list[str] = []

    def new_primary() -> tuple[str, int] | None:
        try:
            address = sentinels.discover_master(settings.redis_sentinel_master)
        except FailoverInProgress:
            seen.append("in progress")
            return None
        return address if address[1] != old.port else None

    _, port = wait_for(new_primary, 30, interval=0.01, what="a new primary")
    assert "in progress" in seen, "the failover was never seen in progress"
    client.set("k", "after")  # through the new primary: idle connections were moved
    assert pool.master_address == ("127.0.0.1", port)
    assert redis.Redis(port=port, db=3).get("k") == b"after"
    assert watch.take()
    client.close()
