"""Start `levers-worker` as a real process tree, read its log, stop or kill it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from tests.servers import wait_for

# For fault tests: a killed or re-identified worker's messages come back after a short
# heartbeat timeout, and a send attempt that hangs ends soon.
FAST_RECOVERY = {
    "LEVERS_HEARTBEAT_TIMEOUT_MS": "2000",
    "LEVERS_MAINTENANCE_CHANCE": "200000",
    "LEVERS_SEND_LEASE_SECONDS": "4",
    "LEVERS_REQUEST_TIMEOUT_SECONDS": "2",
}


class WorkerProcess:
    """`python -m worker.cli` (the `levers-worker` entry point) in its own process group."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, processes: int = 1, threads: int = 4
    ):
        self.env = dict(env)
        self.log_path = log_path
        self.processes = processes
        self.threads = threads
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self.process: subprocess.Popen[bytes] | None = None
        self._drainer = threading.Thread()

    def start(self) -> WorkerProcess:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.cli",
                "--processes",
                str(self.processes),
                "--threads",
                str(self.threads),
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        return self

    def _drain(self) -> None:
        assert self.process and self.process.stdout
        with self.process.stdout, self.log_path.open("a", encoding="utf-8") as log:
            for raw in self.process.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                with self._lock:
                    self.lines.append((time.time(), line))

    def saw(self, text: str) -> bool:
        with self._lock:
            return any(text in line for _, line in self.lines)

    def started_processes(self) -> list[float]:
        with self._lock:
            return [t for t, line in self.lines if "worker process started" in line]

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Wait until every worker process has started consuming; returns when the last did."""
        times = wait_for(
            lambda: (s := self.started_processes()) and len(s) >= self.processes and s,
            timeout,
            what="worker processes to start",
        )
        return max(times)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as an orchestrator would; returns the exit code."""
        assert self.process
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the supervisor and every worker process at once."""
        assert self.process
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def ensure_dead(self) -> None:
        """Kill whatever is left of the process group and close the log pipe."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._drainer.join(10)
