"""The file: checked once up front (hash, encoding, lines), then read as numbered records.

Every number the importer prints is the file's own 1-based line number, as an editor shows it:
the header is line 1, blank lines count, and a CSV record whose quoted cell spans lines is
numbered by its first line.

Encoding: the up-front pass decodes the whole file (as UTF-8 unless `--encoding` says other).
A byte that does not decode refuses the whole file before anything is enqueued, naming its line
and column: such a byte almost always means the whole file is in another encoding (a
spreadsheet's cp1252 export), and importing the rows that happen to decode would call part of a
list with names garbled for the rest. The same pass computes the SHA-256 that identifies the
file for `--resume`, and counts lines for the progress bar; it reads 1 MiB at a time.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

BLOCK_BYTES = 1 << 20


class FileError(ValueError):
    """The file cannot be imported at all; nothing was read into the queue."""


@dataclass(frozen=True)
class FileFacts:
    path: Path
    sha256: str
    size: int
    lines: int
    mtime_ns: int

    def changed(self) -> bool:
        """True when the file on disk is no longer the one that was checked."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return True
        return stat.st_size != self.size or stat.st_mtime_ns != self.mtime_ns


def reading_encoding(encoding: str) -> str:
    """A UTF-8 file may start with a byte order mark (Excel writes one): read past it."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def inspect(path: Path, encoding: str) -> FileFacts:
    """Hash, decode and count the lines of the whole file, in flat memory; FileError if it is
    empty or has a byte `encoding` cannot decode."""
    digest = hashlib.sha256()
    lines = 0
    carry = b""
    stat = os.stat(path)
    with path.open("rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
            data = carry + block
            cut = data.rfind(b"\n") + 1
            _decode(data[:cut], encoding, lines)
            lines += data.count(b"\n", 0, cut)
            carry = data[cut:]
    _decode(carry, encoding, lines)
    if carry:
        lines += 1
    if stat.st_size == 0:
        raise FileError("the file is empty")
    return FileFacts(path, digest.hexdigest(), stat.st_size, lines, stat.st_mtime_ns)


def _decode(data: bytes, encoding: str, lines_before: int) -> None:
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = lines_before + data.count(b"\n", 0, exc.start) + 1
        column = exc.start - start + 1
        raise FileError(
            f"line {line}, byte {column}: 0x{data[exc.start]:02x} is not {encoding} "
            f"({exc.reason}); nothing was enqueued. If the file is in another encoding, pass "
            "--encoding (e.g. --encoding cp1252 for a Windows spreadsheet export) or convert "
            "it to UTF-8"
        ) from None


def open_text(facts: FileFacts, encoding: str) -> IO[str]:
    # newline="": the csv module reads line endings itself (and cells may hold newlines).
    return facts.path.open("r", encoding=reading_encoding(encoding), newline="")


def peek(facts: FileFacts, fmt: str, encoding: str) -> list[str] | None:
    """The CSV header (None for JSONL), read before anything else: FileError when the file has
    no header or no row at all."""
    with open_text(facts, encoding) as handle:
        if fmt != "csv":
            if next(jsonl_records(handle), None) is None:
                raise FileError("the file has no rows (only blank lines)")
            return None
        records = csv_records(handle)
        first, second = next(records, None), next(records, None)
    if first is None:
        raise FileError("the file has no header (only blank lines)")
    if isinstance(first[1], csv.Error):
        raise FileError(f"line {first[0]}: the header cannot be read: {first[1]}")
    if second is None:
        raise FileError("the file has a header but no rows")
    return first[1]


def csv_records(handle: IO[str]) -> Iterator[tuple[int, list[str] | csv.Error]]:
    """(first line, cells) of each CSV record that has a non-empty cell; a record the csv
    module cannot read comes as its csv.Error, and reading goes on after it."""
    reader = csv.reader(handle)
    last = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield last + 1, exc
            last = reader.line_num
            continue
        first, last = last + 1, reader.line_num
        # Blank lines, and rows of empty cells (",,,", as spreadsheets export), are no rows.
        if any(cells):
            yield first, cells


def jsonl_records(handle: IO[str]) -> Iterator[tuple[int, str]]:
    """(line, text) of each non-blank line."""
    for number, text in enumerate(handle, 1):
        if text.strip():
            yield number, text.rstrip("\r\n")
