"""What the benchmarks read about processes: CPU time and RSS of a whole process group.

Every command the benchmarks start runs in a session of its own (`start_new_session=True`), so
its process group id is the pid of the first process, and every process it forks or spawns is
in that group. Numbers come from /proc (Linux), so no extra package is needed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str
    pgrp: int
    cpu_seconds: float
    """utime + stime of the process, plus cutime + cstime of its children already reaped."""


def read_stat(pid: int) -> ProcStat | None:
    """/proc/<pid>/stat, or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): field n is fields[n - 3].
    ticks = sum(int(fields[n - 3]) for n in (14, 15, 16, 17))
    return ProcStat(pid, fields[0], int(fields[5 - 3]), ticks / CLOCK_TICKS)


def group_pids(pgid: int, *, zombies: bool = True) -> list[int]:
    """Every process whose process group is `pgid` (exited but unreaped ones too, unless
    `zombies` is false: their CPU time still counts until their parent reaps them)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None and stat.pgrp == pgid and (zombies or stat.state != "Z"):
                pids.append(stat.pid)
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by every live process of the group."""
    total = 0.0
    for pid in group_pids(pgid):
        stat = read_stat(pid)
        if stat is not None:
            total += stat.cpu_seconds
    return total


def rss_bytes(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


@dataclass
class RssSampler:
    """Samples the RSS of every process of a group in a thread; keeps the maximum per pid."""

    pgid: int
    interval: float = 0.25
    max_rss: dict[int, int] = field(default_factory=dict)
    commands: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        for pid in group_pids(self.pgid):
            rss = rss_bytes(pid)
            if rss is None:
                continue
            if pid not in self.commands:
                self.commands[pid] = cmdline(pid)
            self.max_rss[pid] = max(rss, self.max_rss.get(pid, 0))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()

    def max_where(self, text: str) -> dict[int, int]:
        """Max RSS of the processes whose command line contains `text`."""
        return {pid: rss for pid, rss in self.max_rss.items() if text in self.commands[pid]}


class ProcessGroup:
    """A command in a session of its own, its output in a log file; killed as a whole."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def python_module(
        cls, module: str, args: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> ProcessGroup:
        return cls([sys.executable, "-m", module, *args], env, log_path)

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> ProcessGroup:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL every process of the group (the benchmark needs no graceful stop)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        # Children that outlived the leader's wait are still in the group until they die.
        deadline = time.monotonic() + 5
        while group_pids(self.process.pid, zombies=False) and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            time.sleep(0.02)
