"""A Redis primary, its replicas and three sentinels on free ports, for the failover tests and
the replication benchmark.

Every server is a private `redis-server` (worker.local.RedisServer) in a directory of its own;
a sentinel is the same binary started with `--sentinel` and a generated config file, which it
rewrites as it learns about the replicas and the other sentinels (Debian's `redis-sentinel`
is a link to the same binary). Start-up and each failover are waited for by polling what the
sentinels say, with deadlines, never by sleeping a fixed time.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import redis

from tests.servers import wait_for
from worker.local import RedisServer


def _info(url: str, section: str) -> dict[str, object]:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return dict(client.info(section))
    except redis.RedisError:
        return {}
    finally:
        client.close()


class ReplicaSet:
    """A primary, `replicas` replicas and `sentinels` sentinels that watch them.

    `down_after_ms`: how long a primary must not answer before the sentinels call it down
    (Redis's default is 30 s; a test wants a failover within seconds of a SIGKILL).
    """

    def __init__(
        self,
        directory: Path,
        *,
        master: str = "levers",
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        appendonly: bool = False,
    ) -> None:
        self.directory = directory
        self.master = master
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        # Every data node gets the same settings: any of them may become the primary. A
        # replica's first sync starts at once (Redis waits 5 s for more replicas by default).
        self.data_args = ["--repl-diskless-sync-delay", "0"]
        self.servers = [
            RedisServer(directory / "redis-0", appendonly=appendonly, args=self.data_args)
        ]
        for i in range(replicas):
            self.servers.append(
                RedisServer(
                    directory / f"redis-{i + 1}",
                    appendonly=appendonly,
                    args=[*self.data_args, "--replicaof", "127.0.0.1", str(self.servers[0].port)],
                )
            )
        self.sentinels = [
            RedisServer(
                directory / f"sentinel-{i}",
                config=directory / f"sentinel-{i}" / "sentinel.conf",
                args=["--sentinel"],
            )
            for i in range(sentinels)
        ]

    # -- start and stop ----------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> ReplicaSet:
        for server in self.servers:
            server.start()
        self.wait_replicated(len(self.servers) - 1, timeout)
        quorum = len(self.sentinels) // 2 + 1
        for sentinel in self.sentinels:
            assert sentinel.config is not None
            sentinel.directory.mkdir(parents=True, exist_ok=True)
            sentinel.config.write_text(
                f"sentinel monitor {self.master} 127.0.0.1 {self.servers[0].port} {quorum}\n"
                f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {self.master} 1\n"
            )
            sentinel.start()
        # Sentinels find the replicas through the primary and each other through its
        # hello channel (every 2 s): a failover needs a quorum that knows all of them.
        wait_for(
            lambda: all(self._sentinel_sees_all(s) for s in self.sentinels),
            timeout,
            interval=0.1,
            what="every sentinel to see the primary, its replicas and the other sentinels",
        )
        return self

    def _sentinel_sees_all(self, sentinel: RedisServer) -> bool:
        client = redis.Redis.from_url(sentinel.url, socket_connect_timeout=1, socket_timeout=2)
        try:
            state = client.sentinel_master(self.master)
        except redis.RedisError:
            return False
        finally:
            client.close()
        return (
            int(state.get("num-slaves", 0)) == len(self.servers) - 1
            and int(state.get("num-other-sentinels", 0)) == len(self.sentinels) - 1
            and bool(state.get("is_master"))
            and not state.get("is_sdown")
        )

    def stop(self) -> None:
        for server in [*self.sentinels, *self.servers]:
            if server.process is not None and server.process.poll() is None:
                self.resume(server)  # a paused server cannot stop
            try:
                server.stop()
            except Exception:  # one that does not stop must not keep the others running
                server.kill()

    # -- looking -----------------------------------------------------------------------

    @property
    def sentinel_addresses(self) -> str:
        """`REDIS_SENTINELS` for these sentinels."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def env(self) -> dict[str, str]:
        return {"REDIS_SENTINELS": self.sentinel_addresses, "REDIS_SENTINEL_MASTER": self.master}

    def primary_port(self) -> int | None:
        """The primary's port as the last sentinel that answers says (the one that leads
        the failovers asked for here)."""
        for sentinel in reversed(self.sentinels):
            client = redis.Redis.from_url(sentinel.url, socket_connect_timeout=1, socket_timeout=2)
            try:
                address = client.sentinel_get_master_addr_by_name(self.master)
            except redis.RedisError:
                continue
            finally:
                client.close()
            if address:
                return int(address[1])
        return None

    def primary(self) -> RedisServer:
        port = self.primary_port()
        [server] = [s for s in self.servers if s.port == port]
        return server

    def replicas(self) -> list[RedisServer]:
        port = self.primary_port()
        return [s for s in self.servers if s.port != port]

    def wait_replicated(self, count: int, timeout: float = 30.0) -> None:
        """Wait until the primary has `count` replicas with a live link."""

        def linked() -> bool:
            port = self.primary_port() if self.sentinels_running() else self.servers[0].port
            server = next((s for s in self.servers if s.port == port), None)
            if server is None:
                return False
            info = _info(server.url, "replication")
            online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            return len([v for v in online if v.get("state") == "online"]) >= count

        wait_for(linked, timeout, interval=0.05, what=f"{count} replicas linked to the primary")

    def sentinels_running(self) -> bool:
        return any(s.process is not None and s.process.poll() is None for s in self.sentinels)

    # -- failing over ------------------------------------------------------------------

    def start_failover(self) -> None:
        """`SENTINEL FAILOVER`: promote a replica while the primary still runs. Asked of the
        last sentinel: the others learn of it later, and clients ask the first one first."""
        client = redis.Redis.from_url(self.sentinels[-1].url)
        try:
            client.sentinel_failover(self.master)
        finally:
            client.close()

    def failover(self, timeout: float = 30.0) -> RedisServer:
        """`start_failover`, then wait for the new primary."""
        old = self.primary_port()
        self.start_failover()
        return self.wait_new_primary(old, timeout)

    def kill_primary(self, timeout: float = 30.0) -> tuple[RedisServer, RedisServer]:
        """SIGKILL the primary; returns (the killed one, the replica the sentinels promoted)."""
        old = self.primary()
        old.kill()
        return old, self.wait_new_primary(old.port, timeout)

    def wait_new_primary(self, old: int | None, timeout: float = 30.0) -> RedisServer:
        """Wait until the sentinels name another primary than `old` and it takes writes."""

        def promoted() -> RedisServer | None:
            port = self.primary_port()
            if port is None or port == old:
                return None
            server = next(s for s in self.servers if s.port == port)
            return server if _info(server.url, "replication").get("role") == "master" else None

        return wait_for(promoted, timeout, interval=0.05, what="the sentinels to promote a replica")

    @staticmethod
    def pause(server: RedisServer) -> None:
        """SIGSTOP: alive, connected, answering nothing (a replica that falls behind)."""
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)

    def fall_behind(self, replica: RedisServer, megabytes: int = 32) -> None:
        """Pause `replica` and write `megabytes` of ballast to the primary, more than the
        kernel's socket buffers between them hold: from then on, what the primary takes stays
        in its own memory until the replica reads it, and is gone if the primary dies. (A
        pause alone is not enough: the kernel would still deliver what was written.)"""
        self.pause(replica)
        client = redis.Redis.from_url(self.primary().url)
        try:
            pipe = client.pipeline(transaction=False)
            for i in range(megabytes):
                pipe.set(f"ballast:{i}", b"\0" * 1_000_000)
            pipe.execute()
        finally:
            client.close()

    @staticmethod
    def resume(server: RedisServer) -> None:
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGCONT)

    def wait_role(self, server: RedisServer, role: str, timeout: float = 30.0) -> None:
        """Wait until `server` says it is a `master` or a `slave`."""
        wait_for(
            lambda: _info(server.url, "replication").get("role") == role,
            timeout,
            interval=0.1,
            what=f"port {server.port} to become a {role}",
        )

    def rejoin(self, server: RedisServer, timeout: float = 30.0) -> None:
        """Start a killed server again as a replica of the current primary (what an
        orchestrator restarting it with the sentinels' view would do)."""
        primary = self.primary()
        server.args = [*self.data_args, "--replicaof", "127.0.0.1", str(primary.port)]
        server.start()
        self.wait_replicated(len(self.servers) - 1, timeout)
