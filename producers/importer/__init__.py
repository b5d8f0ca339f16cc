"""`levers-enqueue FILE`: import contacts from a CSV or JSONL file, reporting by line.

    source   the file: checked up front (SHA-256, encoding, lines), then read as numbered records
    columns  columns or keys -> contact fields (aliases, tag:/meta:, mapping options), header check
    run      the import: chunks of rows validated and enqueued, rejects set aside
    validate rows to contact messages, in --jobs processes
    record   how far an import got, in Redis, written atomically with each chunk (--resume)
    rejects  the rejects file
    cli      options, checks before any row is read
    summary  the progress bar and the summary, text or JSON

See `levers-enqueue --help` and docs/importing.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from producers.importer.cli import main
from producers.importer.columns import ColumnMap, HeaderError, RowError, normalise_row
from producers.importer.source import csv_records, inspect, jsonl_records, open_text

__all__ = ["ColumnMap", "HeaderError", "RowError", "main", "normalise_row", "read_rows"]


def read_rows(
    path: Path, fmt: str, columns: ColumnMap | None = None
) -> Iterator[dict[str, Any] | RowError]:
    """The rows of a file as contact fields (or the RowError of each row that cannot be read),
    without validating or enqueueing them."""
    from producers.importer.columns import csv_row, jsonl_row, plan_header

    columns = columns or ColumnMap.build()
    facts = inspect(path, "utf-8")
    with open_text(facts, "utf-8") as handle:
        if fmt == "csv":
            records = csv_records(handle)
            first = next(records, None)
            if first is None or isinstance(first[1], Exception):
                return
            planned = plan_header(first[1], columns)
            for _, cells in records:
                try:
                    if isinstance(cells, Exception):
                        raise RowError(f"not valid CSV: {cells}")
                    yield csv_row(cells, planned)
                except RowError as exc:
                    yield exc
            return
        for _, text in jsonl_records(handle):
            try:
                obj = json.loads(text)
                if not isinstance(obj, dict):
                    raise RowError("a JSONL line must be an object")
                yield jsonl_row(obj, columns)
            except json.JSONDecodeError as exc:
                yield RowError(f"not valid JSON: {exc.msg}")
            except RowError as exc:
                yield exc
