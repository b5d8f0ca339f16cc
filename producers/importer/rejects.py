"""The rejects file: every rejected row with its line number, reason and the row as it was.

For a CSV import it is a CSV whose columns are `line`, `reason`, `message` and then the
file's own header; for JSONL, one JSON object a line: `{"line", "reason", "message", "row"}`
with the original line as text. Fix the rows, drop the first three columns (or keep `row`),
and import them as a file of their own. The file is created on the first reject only. On
`--resume`, entries past the line the import had recorded are dropped first (they are read
again), so each rejected line appears once.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str
    message: str

    def to_json(self) -> dict[str, object]:
        return {"line": self.line, "reason": self.reason, "message": self.message}


def default_path(source: Path, fmt: str) -> Path:
    return source.with_name(source.name + (".rejects.csv" if fmt == "csv" else ".rejects.jsonl"))


class RejectsFile:
    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.header: Sequence[str] = ()
        self.written = 0
        self._handle: IO[str] | None = None

    def check_writable(self) -> str | None:
        """Why the file could not be written, or None (checked before any row is read)."""
        directory = self.path.parent
        if self.path.exists() and not os.access(self.path, os.W_OK):
            return f"cannot write rejects to {self.path}: permission denied"
        if not os.access(directory, os.W_OK):
            return f"cannot write rejects in {directory}: permission denied"
        return None

    def keep_through(self, line: int) -> Iterator[Reject]:
        """On resume: keep the entries of lines up to `line`, drop the rest; yields those kept."""
        if not self.path.exists():
            return
        kept = self.path.with_name(self.path.name + ".tmp")
        with (
            self.path.open(newline="", encoding="utf-8") as old,
            kept.open("w", newline="", encoding="utf-8") as new,
        ):
            if self.fmt == "csv":
                reader = csv.reader(old)
                writer = csv.writer(new)
                header = next(reader, None)
                if header is not None:
                    writer.writerow(header)
                for row in reader:
                    if row and row[0].isdigit() and int(row[0]) <= line:
                        writer.writerow(row)
                        yield Reject(int(row[0]), row[1], row[2])
            else:
                for text in old:
                    entry = json.loads(text)
                    if entry["line"] <= line:
                        new.write(text)
                        yield Reject(entry["line"], entry["reason"], entry["message"])
        os.replace(kept, self.path)
        self.written = 1  # the file exists: append to it

    def write(self, reject: Reject, original: Sequence[str] | str) -> None:
        handle = self._open()
        if self.fmt == "csv":
            csv.writer(handle).writerow([reject.line, reject.reason, reject.message, *original])
        else:
            entry = {**reject.to_json(), "row": original}
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.written += 1

    def _open(self) -> IO[str]:
        if self._handle is None:
            appending = self.written > 0 and self.path.exists()
            self._handle = self.path.open("a" if appending else "w", newline="", encoding="utf-8")
            if self.fmt == "csv" and not appending:
                csv.writer(self._handle).writerow(["line", "reason", "message", *self.header])
        return self._handle

    def flush(self) -> None:
        """Before the chunk's transaction: a reject is on disk before its line counts as done."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
