"""The `levers-worker` supervisor: runs N worker processes and stops with them.

It restarts nothing: when a worker process dies, it stops the others and exits non-zero, so
whatever started it (systemd with `Restart=always`, a Kubernetes Deployment) sees the failure
and starts it again. One process tree per host; replicas scale across hosts against one Redis.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from typing import Any

log = logging.getLogger("levers.worker")


class Supervisor:
    """Runs N worker processes; exits non-zero if one dies, so systemd or Kubernetes notice."""

    def __init__(self, processes: int, threads: int, send_threads: int) -> None:
        self.processes = processes
        self.threads = threads
        self.send_threads = send_threads
        self.children: list[subprocess.Popen[bytes]] = []
        self.stopping = threading.Event()
        self.signals = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.process",
                "--threads",
                str(self.threads),
                "--send-threads",
                str(self.send_threads),
            ]
        )

    def healthy(self) -> bool:
        return not self.stopping.is_set() and all(c.poll() is None for c in self.children)

    def on_signal(self, signum: int, _frame: Any) -> None:
        self.signals += 1
        self.stopping.set()
        # First signal: graceful (finish requests in flight). Second: stop at once.
        sig = signal.SIGTERM if self.signals == 1 else signal.SIGKILL
        for child in self.children:
            if child.poll() is None:
                child.send_signal(sig)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        self.children = [self.spawn() for _ in range(self.processes)]
        log.info(
            "levers-worker started",
            extra={
                "processes": self.processes,
                "threads": self.threads,
                "pids": ",".join(str(c.pid) for c in self.children),
            },
        )
        announced = 0
        while True:
            if self.signals != announced:
                announced = self.signals
                if announced == 1:
                    log.info(
                        "stopping: finishing requests in flight; a second signal stops at once"
                    )
                else:
                    log.warning("stopping at once")
            for child in self.children:
                code = child.poll()
                if code is not None and not self.stopping.is_set():
                    log.error("worker process died", extra={"pid": child.pid, "code": code})
                    self.on_signal(signal.SIGTERM, None)
            if all(child.poll() is not None for child in self.children):
                break
            # Not stopping.wait(): once stopping is set it returns at once, and this loop would
            # spin on a core while the processes finish their requests.
            time.sleep(0.2)
        codes = [child.returncode for child in self.children]
        clean = self.signals > 0 and all(code == 0 for code in codes)
        return 0 if clean else 1
