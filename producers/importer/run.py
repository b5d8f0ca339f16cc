"""One import: read the file in chunks, validate them in helper processes, enqueue each chunk
in one transaction with its record.

Memory stays flat whatever the file's size: records are read `CHUNK_ROWS` at a time, at most
`AHEAD` chunks per validating process are in flight, rejects go to the rejects file as they
come, and only the first `LISTED` rejects are kept for the summary.
"""

from __future__ import annotations

import csv
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import IO, Any

from producers.importer.columns import ColumnMap, HeaderError, plan_header
from producers.importer.record import ImportRecord, Progress
from producers.importer.rejects import Reject, RejectsFile
from producers.importer.source import FileError, FileFacts, csv_records, jsonl_records, open_text
from producers.importer.validate import Defaults, Pool, Record, Result, Validator
from worker.broker import contact_message
from worker.contacts import SUPPRESSED, ContactRules

CHUNK_ROWS = 2000  # rows per Redis transaction (messages and record together)
AHEAD = 2  # chunks in flight per validating process
MESSAGE_CONTACTS = 50  # contacts per dramatiq message, as `enqueue_contacts` sends them
LISTED = 1000  # rejects kept for the summary; all of them are in the rejects file


@dataclass
class Outcome:
    facts: FileFacts
    total: Progress  # the whole file, earlier runs included
    run: Progress  # this run only
    resumed_after: int = 0
    rejects: list[Reject] = field(default_factory=list)  # the first LISTED, by line
    rejects_file_written: bool = False
    dry_run: bool = False


class Importer:
    def __init__(
        self,
        facts: FileFacts,
        fmt: str,
        encoding: str,
        columns: ColumnMap,
        defaults: Defaults,
        rules: ContactRules,
        rejects: RejectsFile,
        record: ImportRecord | None,
        *,
        jobs: int = 1,
        on_progress: Callable[[int], object] = lambda line: None,
    ) -> None:
        """`record` None is a dry run: rows are read and validated, nothing is enqueued."""
        self.facts = facts
        self.fmt = fmt
        self.encoding = encoding
        self.columns = columns
        self.defaults = defaults
        self.rules = rules
        self.rejects = rejects
        self.record = record
        self.jobs = jobs
        self.on_progress = on_progress

    def run(self, start: Progress) -> Outcome:
        """Import every row after `start.line`; Outcome.total adds this run to `start`."""
        outcome = Outcome(
            self.facts,
            total=start,
            run=Progress(line=start.line),
            resumed_after=start.line,
            dry_run=self.record is None,
        )
        if start.line:
            outcome.rejects = list(self.rejects.keep_through(start.line))[:LISTED]
        with open_text(self.facts, self.encoding) as handle:
            records, planned = self._records(handle)
            pool = Pool(
                Validator(self.fmt, self.columns, planned, self.defaults, self.rules),
                self.jobs,
            )
            window: deque[tuple[list[Record], Future[list[Result]]]] = deque()
            done = False
            try:
                for chunk in _chunks(records, start.line):
                    window.append((chunk, pool.submit(chunk)))
                    if len(window) >= AHEAD * self.jobs:
                        self._finish(*window.popleft(), outcome)
                while window:
                    self._finish(*window.popleft(), outcome)
                done = True
            finally:
                pool.close(wait=done)
        if outcome.total.rows == 0:
            what = "a header but no rows" if self.fmt == "csv" else "no rows (only blank lines)"
            raise FileError(f"the file has {what}")
        outcome.rejects_file_written = self.rejects.written > 0
        if self.record is not None:
            self.record.finish()
        return outcome

    def _records(self, handle: IO[str]) -> tuple[Iterator[Record], tuple[str, ...]]:
        if self.fmt != "csv":
            return jsonl_records(handle), ()
        records = csv_records(handle)
        first = next(records, None)
        if first is None:
            raise FileError("the file has no header (only blank lines)")
        header_line, header = first
        if isinstance(header, csv.Error):
            raise HeaderError(f"line {header_line}: the header cannot be read: {header}")
        self.rejects.header = header
        return records, tuple(plan_header(header, self.columns))

    def _finish(self, chunk: list[Record], future: Future[list[Result]], outcome: Outcome) -> None:
        payloads: list[dict[str, Any]] = []
        rejected: Counter[str] = Counter()
        results = list(zip(chunk, future.result(), strict=True))
        suppressed = (
            self.record.suppressed([r[1]["number"] for _, r in results if len(r) == 2])
            if self.record is not None
            else set()
        )
        for (line, raw), result in results:
            if len(result) == 2 and result[1]["number"] not in suppressed:
                payloads.append(result[1])
                continue
            if len(result) == 2:
                result = (line, SUPPRESSED, "the number is on the do-not-call list")
            reject = Reject(line, result[1], result[2])
            self.rejects.write(reject, [] if isinstance(raw, Exception) else raw)
            rejected[reject.reason] += 1
            if len(outcome.rejects) < LISTED:
                outcome.rejects.append(reject)
        last = chunk[-1][0]
        if self.record is not None:
            messages = [
                contact_message(payloads[i : i + MESSAGE_CONTACTS])
                for i in range(0, len(payloads), MESSAGE_CONTACTS)
            ]
            # The rejects reach the disk before their lines count as done in Redis.
            self.rejects.flush()
            if not self.record.commit(messages, last, len(chunk), len(payloads), rejected):
                outcome.run.unconfirmed += len(payloads)
        for progress in (outcome.total, outcome.run):
            progress.line = last
            progress.rows += len(chunk)
            progress.accepted += len(payloads)
            progress.rejected = dict(Counter(progress.rejected) + rejected)
        self.on_progress(last)


def _chunks(records: Iterator[Record], after: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        if record[0] <= after:
            continue  # done by the run this one resumes
        chunk.append(record)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
