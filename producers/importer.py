"""`levers-enqueue FILE`: import contacts from a CSV (header row) or JSONL file.

Column names are the Python API's (`number`, `first_name`, `last_name`, `template_id`,
`update_existing`, `metadata`, `prompt_tags`, `region`, `dedupe_key`) or Levers' own
(`numberToCall`, `firstName`, `lastName`, `aiSettingsTemplateId`, `updateExisting`,
`promptTags`). In CSV, `metadata` and `prompt_tags` cells hold JSON objects, and columns named
`tag:NAME` / `meta:NAME` add one prompt tag / metadata field each. Exit status: 0 when every
row was accepted, 1 when some were rejected (the rest are enqueued), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from producers.api import Producer, Rejection
from worker.settings import settings_or_exit

ALIASES = {
    "numberToCall": "number",
    "phone": "number",
    "firstName": "first_name",
    "lastName": "last_name",
    "aiSettingsTemplateId": "template_id",
    "updateExisting": "update_existing",
    "promptTags": "prompt_tags",
}
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n", ""}


class RowError(ValueError):
    pass


def normalise_row(raw: dict[str, Any], from_csv: bool) -> dict[str, Any]:
    row: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for name, value in raw.items():
        if name is None:
            raise RowError("the row has more cells than the header")
        # csv.DictReader fills the cells a short row lacks with None: same as empty cells.
        if from_csv and value in ("", None):
            continue
        if name.startswith("tag:"):
            tags[name[4:]] = value
        elif name.startswith("meta:"):
            meta[name[5:]] = value
        else:
            row[ALIASES.get(name, name)] = value
    if from_csv:
        for field in ("metadata", "prompt_tags"):
            if isinstance(row.get(field), str):
                try:
                    row[field] = json.loads(row[field])
                except json.JSONDecodeError as exc:
                    raise RowError(f"{field} is not valid JSON: {exc.msg}") from exc
        flag = row.get("update_existing")
        if isinstance(flag, str):
            if flag.lower() not in _TRUE | _FALSE:
                raise RowError(f"update_existing {flag!r} is not true/false")
            row["update_existing"] = flag.lower() in _TRUE
    for field, extra in (("prompt_tags", tags), ("metadata", meta)):
        if extra:
            base = row.get(field) or {}
            if not isinstance(base, dict):
                raise RowError(f"{field} must be an object to add columns to it")
            row[field] = {**base, **extra}
    return row


def read_rows(path: Path, fmt: str) -> Iterator[dict[str, Any] | RowError]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        if fmt == "csv":
            for raw in csv.DictReader(handle):
                try:
                    yield normalise_row(dict(raw), from_csv=True)
                except RowError as exc:
                    yield exc
            return
        for line in handle:
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
                if not isinstance(parsed, dict):
                    raise RowError("a JSONL line must be an object")
                yield normalise_row(parsed, from_csv=False)
            except json.JSONDecodeError as exc:
                yield RowError(f"not valid JSON: {exc.msg}")
            except RowError as exc:
                yield exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="levers-enqueue", description="Enqueue contacts from a CSV or JSONL file."
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--format", choices=["csv", "jsonl"], help="default: by file extension")
    parser.add_argument("--template-id", help="template for rows that name none")
    parser.add_argument("--update-existing", action="store_true", help="for rows that say nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    fmt = args.format or ("jsonl" if args.file.suffix in {".jsonl", ".ndjson"} else "csv")
    if not args.file.is_file():
        print(f"levers-enqueue: no such file: {args.file}", file=sys.stderr)
        return 2
    settings = settings_or_exit()

    rows: list[dict[str, Any]] = []
    positions: list[int] = []  # row index in the file for each row handed to the producer
    rejected: list[Rejection] = []
    for index, item in enumerate(read_rows(args.file, fmt)):
        if isinstance(item, RowError):
            rejected.append(Rejection(index, "invalid_row", str(item)))
            continue
        if args.template_id and "template_id" not in item:
            item["template_id"] = args.template_id
        if args.update_existing and "update_existing" not in item:
            item["update_existing"] = True
        rows.append(item)
        positions.append(index)

    producer = Producer(settings)
    try:
        result = producer.enqueue_contacts(rows)
    finally:
        producer.close()
    rejected += [Rejection(positions[r.index], r.reason, r.message) for r in result.rejected]
    rejected.sort(key=lambda r: r.index)
    by_reason = Counter(r.reason for r in rejected)
    summary = {
        "rows": len(rows) + by_reason["invalid_row"],
        "accepted": len(result.accepted),
        "rejected": len(rejected),
        "rejected_by_reason": dict(by_reason),
        "rejections": [r.__dict__ for r in rejected[:100]],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{args.file}: {summary['rows']} rows, {summary['accepted']} accepted, "
            f"{summary['rejected']} rejected"
        )
        for reason, count in sorted(by_reason.items()):
            print(f"  {reason}: {count}")
        for r in rejected[:20]:
            # Row numbers count data rows from 1 (the CSV header is not a row).
            print(f"  row {r.index + 1}: {r.reason}: {r.message}")
        if len(rejected) > 20:
            print(f"  … and {len(rejected) - 20} more (use --json for all)")
    return 1 if rejected else 0


if __name__ == "__main__":
    raise SystemExit(main())
