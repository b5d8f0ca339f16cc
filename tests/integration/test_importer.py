"""`levers-enqueue` as a user runs it: line numbers, file-level errors, mapping options, JSON,
dry runs, and resuming after a SIGKILL without enqueueing a row twice."""

from __future__ import annotations

import csv
import json
import os
import pty
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.commands import clean_env, no_traceback, run, script
from tests.servers import RedisServer, wait_for

pytestmark = pytest.mark.integration

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"


@pytest.fixture
def env(redis_server: RedisServer, redis_client: redis.Redis) -> dict[str, str]:
    return clean_env(REDIS_URL=redis_server.url, LEVERS_NAMESPACE=f"imp-{uuid.uuid4().hex[:8]}")


def queued(client: redis.Redis, env: dict[str, str]) -> list[dict[str, Any]]:
    """Every contact waiting in the contacts queue (no worker runs in these tests)."""
    contacts: list[dict[str, Any]] = []
    for raw in client.hvals(f"{env['LEVERS_NAMESPACE']}:dramatiq:levers.contacts.msgs"):
        payload = json.loads(raw)["args"][0]
        contacts.extend(payload if isinstance(payload, list) else [payload])
    return contacts


def numbers(count: int, start: int = 0) -> Iterator[str]:
    for i in range(start, start + count):
        yield f"+9665{10_000_000 + i:08d}"


def test_every_number_printed_is_the_files_own_line(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(
        "number,first_name,last_name\n"  # line 1
        "+966501234567,Sara,Ali\n"  # 2
        "\n"  # 3: blank, counted
        '+966501234568,"Omar\nthe second",X\n'  # 4-5: one record over two lines: a name with
        # a line break in it, which would reach Levers' prompt as it is: rejected
        "0501234569,Nour,Y\n"  # 6: national, no region: rejected
        ",,\n"  # 7: no cells: not a row
        "+96612341234,Bad,Z\n",  # 8: too short: rejected
        encoding="utf-8",
    )
    text = run("levers-enqueue", [str(path)], env)
    no_traceback(text)
    assert text.returncode == 1
    assert "4 rows, 1 accepted, 3 rejected" in text.stdout
    assert "line 4: invalid_name" in text.stdout
    assert "line 6: unparseable_number" in text.stdout
    assert "line 8: invalid_number" in text.stdout

    again = run("levers-enqueue", [str(path), "--json", "--force", "--dry-run"], env)
    summary = json.loads(again.stdout)
    assert [(r["line"], r["reason"]) for r in summary["rejects"]] == [
        (4, "invalid_name"),
        (6, "unparseable_number"),
        (8, "invalid_number"),
    ]
    with (tmp_path / "contacts.csv.rejects.csv").open(newline="", encoding="utf-8") as handle:
        rejects = list(csv.reader(handle))
    assert rejects[0] == ["line", "reason", "message", "number", "first_name", "last_name"]
    assert rejects[1][:2] == ["4", "invalid_name"] and rejects[1][4] == "Omar\nthe second"
    assert rejects[2][:2] == ["6", "unparseable_number"]
    assert rejects[2][3:] == ["0501234569", "Nour", "Y"]
    assert rejects[3][:2] == ["8", "invalid_number"]
    assert len(queued(redis_client, env)) == 1

    jsonl = tmp_path / "contacts.jsonl"
    jsonl.write_text(
        '\n{"number": "+966501234570"}\n\n{"number": "nope"}\n[1]\n{oops\n', encoding="utf-8"
    )
    result = json.loads(run("levers-enqueue", [str(jsonl), "--json"], env).stdout)
    assert [(r["line"], r["reason"]) for r in result["rejects"]] == [
        (4, "unparseable_number"),
        (5, "invalid_row"),
        (6, "invalid_row"),
    ]
    entry = json.loads((tmp_path / "contacts.jsonl.rejects.jsonl").read_text().splitlines()[0])
    assert entry == {**entry, "line": 4, "row": '{"number": "nope"}'}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"number,first_name\n\n", "the file has a header but no rows"),
        (b"first_name,email\nSara,s@x\n", "no number column"),
        (b"first_name,email\nSara,s@x\n", "unknown column 'email'"),
        (b"number,first_name\n+966501234567,Sara\n+966501234568,Jos\xe9\n", "line 3, byte 18"),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_whole(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis, content: bytes, message: str
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(content)
    result = run("levers-enqueue", [str(path)], env)
    no_traceback(result)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert queued(redis_client, env) == []


def test_another_encoding_is_read_when_named(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("number,first_name\n+966501234567,José\n".encode("cp1252"))
    result = run("levers-enqueue", [str(path), "--encoding", "cp1252", "--dry-run"], env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template-id", "not-a-uuid"], "'not-a-uuid' is not a template UUID"),
        (["--region", "XX"], "'XX' is not a region code"),
        (["--jobs", "0"], "0 is below 1"),
    ],
)
def test_bad_options_fail_before_any_row_is_read(
    tmp_path: Path, env: dict[str, str], args: list[str], message: str
) -> None:
    # An empty file: had it been read, the error would be about the file.
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    result = run("levers-enqueue", [str(path), *args], env)
    assert result.returncode == 2
    assert message in result.stderr and "empty" not in result.stderr


def test_mapping_options_and_defaults(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis
) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "Mobile,Name,Invoice,Amount,Segment,template_id\n"
        "0501234567,Sara,inv-1,120,gold,\n"
        f"+447911123456,Ann,inv-2,50,silver,{TEMPLATE.upper()}\n",
        encoding="utf-8",
    )
    args = [
        str(path),
        "--number-column",
        "Mobile",
        "--metadata-columns",
        "Invoice,Segment",
        "--prompt-tag-columns",
        "Amount,Name",
        "--template",
        "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5",
        "--update-existing",
        "--region",
        "sa",
    ]
    result = run("levers-enqueue", args, env)
    assert result.returncode == 0, result.stderr + result.stdout
    sara, ann = sorted(queued(redis_client, env), key=lambda c: c["number"])[::-1]
    assert sara == {
        "number": "+966501234567",
        "metadata": {"Invoice": "inv-1", "Segment": "gold"},
        "prompt_tags": {"Amount": "120", "Name": "Sara"},
        "template_id": "9c1d2e3f-4a5b-4c6d-8e7f-a0b1c2d3e4f5",
        "update_existing": True,
    }
    assert ann["number"] == "+447911123456" and ann["template_id"] == TEMPLATE

    missing = run("levers-enqueue", [str(path), "--metadata-columns", "Nope"], env)
    assert missing.returncode == 2 and "no column 'Nope' in the header" in missing.stderr


def test_dry_run_enqueues_nothing_and_json_says_what_it_left_out(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis
) -> None:
    path = tmp_path / "many.csv"
    lines = ["number"] + list(numbers(10)) + ["+96612341234"] * 1050
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("levers-enqueue", [str(path), "--dry-run", "--json"], env)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["dry_run"] is True and summary["accepted"] == 10
    assert summary["rejected"] == 1050 and len(summary["rejects"]) == 1000
    assert summary["rejects"][0]["line"] == 12 and summary["rejects_left_out"] == 50
    assert summary["rejects_file"] == f"{path}.rejects.csv"
    assert "all 1050 are in" in summary["rejects_note"]
    written = (tmp_path / "many.csv.rejects.csv").read_text().splitlines()
    assert len(written) == 1 + 1050 and written[-1].startswith("1061,invalid_number,")
    assert queued(redis_client, env) == []


def test_the_same_file_twice_is_refused_unless_forced(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis
) -> None:
    path = tmp_path / "once.csv"
    path.write_text("number\n" + "\n".join(numbers(3)) + "\n", encoding="utf-8")
    assert run("levers-enqueue", [str(path)], env).returncode == 0
    again = run("levers-enqueue", [str(path)], env)
    assert again.returncode == 2
    assert "this file was imported already" in again.stderr and "--force" in again.stderr
    assert len(queued(redis_client, env)) == 3
    assert run("levers-enqueue", [str(path), "--force"], env).returncode == 0
    assert len(queued(redis_client, env)) == 6


def test_resume_after_a_kill_enqueues_every_row_exactly_once(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis
) -> None:
    rows = 40_000
    path = tmp_path / "big.csv"
    bad = {7, 20_000, 39_999}  # data rows (0-based) made invalid: lines 9, 20002, 40001
    body = [n if i not in bad else "+96612341234" for i, n in enumerate(numbers(rows))]
    path.write_text("number\n" + "\n".join(body) + "\n", encoding="utf-8")
    record_key = None
    process = subprocess.Popen(
        [script("levers-enqueue"), str(path), "--jobs", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def recorded_line() -> int:
        nonlocal record_key
        keys = redis_client.keys(f"{env['LEVERS_NAMESPACE']}:import:*")
        record_key = keys[0] if keys else None
        line = redis_client.hget(record_key, "line") if record_key else None
        return int(line or 0)

    try:
        wait_for(lambda: recorded_line() > 0, 30, interval=0.005, what="a first chunk")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    stopped_at = recorded_line()
    assert 0 < stopped_at < rows + 1, "the kill came too late to test a resume"

    refused = run("levers-enqueue", [str(path)], env)
    assert refused.returncode == 2 and f"stopped after line {stopped_at}" in refused.stderr

    resumed = run("levers-enqueue", [str(path), "--resume", "--json"], env, timeout=120)
    assert resumed.returncode == 1, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["resumed_after_line"] == stopped_at
    assert summary["rows"] == rows and summary["accepted"] == rows - 3
    assert [r["line"] for r in summary["rejects"]] == [9, 20_002, 40_001]
    sent = [c["number"] for c in queued(redis_client, env)]
    assert len(sent) == rows - 3 == len(set(sent))
    rejects = (tmp_path / "big.csv.rejects.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rejects] == [9, 20_002, 40_001]


def test_progress_bar_on_a_terminal_only(tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "bar.csv"
    path.write_text("number\n" + "\n".join(numbers(5)) + "\n", encoding="utf-8")
    piped = run("levers-enqueue", [str(path), "--dry-run"], env)
    assert "lines/s" not in piped.stderr and "|" not in piped.stderr

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [script("levers-enqueue"), str(path), "--dry-run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(30) == 0
    os.close(controller)
    assert b"lines" in shown, shown


def test_redis_unreachable_or_misnamed_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("number\n+966501234567\n", encoding="utf-8")
    down = run("levers-enqueue", [str(path)], clean_env(REDIS_URL="redis://127.0.0.1:1/0"))
    assert down.returncode == 2
    assert down.stderr.count("\n") == 1
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in down.stderr
    bad = run("levers-enqueue", [str(path)], clean_env(REDIS_URL="foo://bar"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "REDIS_URL='foo://bar'" in bad.stderr
