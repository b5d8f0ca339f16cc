"""`levers-enqueue` throughput and memory: `python -m benchmarks.importer [--rows N]`.

Writes a CSV of N rows (numbers, names, a template column, a prompt tag and a metadata column;
one row in 100 invalid), starts its own redis-server (`worker.local.RedisServer`), runs the
real `levers-enqueue` command on it, and prints rows/s over the command's whole run (start-up,
the up-front hash and encoding pass, reading, validation, enqueueing) and its peak RSS. The
goal is >= 25,000 rows/s; peak RSS should not grow with N (flat memory): compare --rows 200000
with --rows 1000000.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worker.local import RedisServer

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(
            "numberToCall,firstName,lastName,aiSettingsTemplateId,tag:amount,meta:crm_id\n"
        )
        for i in range(rows):
            number = f"+9665{10_000_000 + i % 90_000_000:08d}" if i % 100 else "+96612341234"
            handle.write(f"{number},Customer {i},Family,{TEMPLATE},{100 + i % 50},{i}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.importer")
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="levers-bench-import-"))
    server = RedisServer(work / "redis").start()
    try:
        csv_path = work / "contacts.csv"
        write_csv(csv_path, args.rows)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("LEVERS_", "REDIS_"))},
            "REDIS_URL": server.url,
            "LEVERS_NAMESPACE": "bench-import",
        }
        command = [str(Path(sys.executable).parent / "levers-enqueue"), str(csv_path), "--json"]
        started = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kib = usage.ru_maxrss
        cpu = usage.ru_utime + usage.ru_stime
        if result.returncode not in (0, 1):
            print(result.stderr, file=sys.stderr)
            return 1
        summary = json.loads(result.stdout)
        size_mb = csv_path.stat().st_size / 1e6
        print(
            f"levers-enqueue: {summary['rows']:,} rows ({size_mb:.0f} MB) in {elapsed:.2f} s = "
            f"{summary['rows'] / elapsed:,.0f} rows/s; {summary['accepted']:,} enqueued, "
            f"{summary['rejected']:,} rejected; peak RSS {peak_kib / 1024:.0f} MB "
            "(goal: >= 25,000 rows/s, RSS flat in --rows)"
        )
        print(
            f"CPU: {cpu * 1e6 / summary['rows']:.0f} µs per row in all (the command and its "
            f"validating processes); load average during the run: {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs"
        )
        return 0
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
