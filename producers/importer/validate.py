"""Rows to contact messages, a chunk at a time, in worker processes.

Validation is most of an import's CPU (phonenumbers parses and checks every number, ~80 % of
the time), so the importer reads and enqueues in its own process and validates chunks in
`--jobs` processes (one per CPU by default), a few chunks ahead, in order. Each chunk's result
is a list of `(line, payload)` for accepted rows and `(line, reason, message)` for rejects.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from producers.importer.columns import (
    ColumnMap,
    RowError,
    compile_columns,
    jsonl_row,
    row_from_cells,
)
from worker.contacts import ContactRules, validate_contact
from worker.errors import ContactError

INVALID_ROW = "invalid_row"

Record = tuple[int, Any]  # (line, CSV cells | csv.Error | JSONL text)
Result = tuple[int, dict[str, Any]] | tuple[int, str, str]


@dataclass(frozen=True)
class Defaults:
    """What the options give a row that says nothing of it."""

    template_id: str | None = None
    update_existing: bool = False
    region: str | None = None

    def apply(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.template_id is not None and "template_id" not in row:
            row["template_id"] = self.template_id
        if self.update_existing and "update_existing" not in row:
            row["update_existing"] = True
        if self.region is not None and "region" not in row:
            row["region"] = self.region
        return row


@dataclass(frozen=True)
class Validator:
    fmt: str
    columns: ColumnMap
    planned: tuple[str, ...]  # CSV: the canonical name of each column
    defaults: Defaults
    rules: ContactRules
    plan: list[tuple[int, str]] = field(default_factory=list, init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plan", compile_columns(self.planned))

    def __call__(self, records: Sequence[Record]) -> list[Result]:
        return [self.one(line, raw) for line, raw in records]

    def one(self, line: int, raw: Any) -> Result:
        try:
            if isinstance(raw, Exception):
                raise RowError(f"not valid CSV: {raw}")
            fields = row_from_cells(raw, self.plan) if self.fmt == "csv" else self._jsonl(raw)
            contact = validate_contact(self.defaults.apply(fields), self.rules)
        except RowError as exc:
            return (line, INVALID_ROW, str(exc))
        except ContactError as exc:
            return (line, exc.reason, str(exc))
        return (line, contact.to_message())

    def _jsonl(self, text: str) -> dict[str, Any]:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RowError(f"not valid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise RowError("a JSONL line must be an object")
        return jsonl_row(obj, self.columns)


_validator: Validator | None = None


def _start(validator: Validator) -> None:
    global _validator
    _validator = validator
    # Ctrl-C reaches the whole process group: the importer stops; its helpers just go.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(records: Sequence[Record]) -> list[Result]:
    assert _validator is not None
    return _validator(records)


class Pool:
    """Validates chunks in `jobs` processes (in this one when jobs is 1)."""

    def __init__(self, validator: Validator, jobs: int) -> None:
        self.validator = validator
        self.executor = (
            ProcessPoolExecutor(jobs, initializer=_start, initargs=(validator,))
            if jobs > 1
            else None
        )

    def submit(self, records: Sequence[Record]) -> Future[list[Result]]:
        if self.executor is not None:
            return self.executor.submit(_run, records)
        future: Future[list[Result]] = Future()
        future.set_result(self.validator(records))
        return future

    def close(self, *, wait: bool = True) -> None:
        """`wait` False (interrupted): drop the chunks not started, do not wait for the rest."""
        if self.executor is not None:
            self.executor.shutdown(wait=wait, cancel_futures=not wait)
