"""Local servers for the demo, the tests and the benchmarks: a private redis-server on a free
port, started and stopped by its owner (so nothing it did not create is ever touched)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    """True when a Redis at `url` answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class RedisServer:
    """A private redis-server, so tests never touch a database they did not create."""

    def __init__(
        self,
        directory: Path,
        *,
        appendonly: bool = False,
        args: Sequence[str] = (),
        config: Path | None = None,
    ) -> None:
        """`args` are more redis-server options (`--replicaof`, ...); `config` is a file read
        before them (a sentinel's, which it rewrites as it learns)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not on PATH: install Redis (apt-get install redis-server)"
            )
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.appendonly = appendonly
        self.binary = binary
        self.args = list(args)
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                *([str(self.config)] if self.config else []),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers(self.url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the redis-server started on port {self.port} does not answer")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """SIGTERM: redis-server writes its append-only file and exits."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: what it had not written or replicated yet is gone."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()
