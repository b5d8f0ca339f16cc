"""`levers-enqueue FILE`: the command line, its checks before any row is read, the summary."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import uuid
from pathlib import Path
from types import FrameType

import phonenumbers
import redis

from producers.importer.columns import ColumnMap, HeaderError, plan_header
from producers.importer.record import ImportRecord, ImportRefused, Progress
from producers.importer.rejects import RejectsFile, default_path
from producers.importer.run import Importer
from producers.importer.source import FileError, FileFacts, inspect, peek
from producers.importer.summary import print_summary, progress_bar
from producers.importer.validate import Defaults
from worker.commands import (
    REDIS_VARIABLES,
    HelpFormatter,
    environment_help,
    epilog,
    exit_codes_help,
    fail,
    paragraphs,
    positive_int,
    redis_or_exit,
    redis_problem,
)
from worker.connection import describe
from worker.durability import Durability
from worker.keys import Keys
from worker.presence import mark_producer, no_worker_warning
from worker.settings import Settings, settings_or_exit

PROG = "levers-enqueue"
INTERRUPTED = 3
EXIT_CODES = (
    (0, "every row was enqueued (or, with --dry-run, would be)"),
    (
        1,
        "some rows were rejected (see the rejects file), or with LEVERS_REDIS_MIN_REPLICAS some "
        "accepted rows were not confirmed by enough replicas; every other row was enqueued",
    ),
    (
        2,
        "nothing was enqueued: bad option or configuration, a file that cannot be imported "
        "(missing, empty, header only, no number column, an unknown column, a byte that is "
        "not in --encoding), a file imported already, or Redis unreachable",
    ),
    (
        INTERRUPTED,
        "interrupted (Ctrl-C, SIGTERM, Redis lost, or another run took over): every row up to "
        "the line printed is enqueued, none after it; run again with --resume",
    ),
)
ENVIRONMENT = (
    *REDIS_VARIABLES,
    "default_region",
    "heartbeat_timeout_ms",
    "import_retention_seconds",
)
ABOUT = (
    "Enqueue contacts from a CSV file (with a header row) or a JSONL file (one JSON object a "
    "line). Columns are the Python API's names (number, first_name, last_name, template_id, "
    "update_existing, metadata, prompt_tags, region, dedupe_key, time_zone, not_before, "
    "expire_at) or Levers' (numberToCall, "
    "firstName, lastName, aiSettingsTemplateId, updateExisting, promptTags); in CSV, metadata "
    "and prompt_tags cells hold JSON objects, and tag:NAME / meta:NAME columns add one prompt "
    "tag / metadata field each.",
    "Every line number printed is the file's own, as an editor shows it: the header is line 1 "
    "and blank lines count. Rows are read, validated and enqueued in chunks, in flat memory; "
    "each chunk is enqueued in one Redis transaction together with the record of how far the "
    "import got, so an interrupted import resumes (--resume) without enqueueing a row twice, "
    "and the same file is not imported twice unless --force says so.",
)


def _template(text: str) -> str:
    if text == "default":
        return text
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a template UUID") from None


def _region(text: str) -> str:
    if text.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a region code (e.g. SA, US, GB)")
    return text.upper()


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("give one or more column names, comma-separated")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=paragraphs(*ABOUT),
        formatter_class=HelpFormatter,
        epilog=epilog(exit_codes_help(EXIT_CODES), environment_help(ENVIRONMENT)),
    )
    add = parser.add_argument
    add("file", type=Path, metavar="FILE", help="the CSV or JSONL file")
    add("--format", choices=["csv", "jsonl"], help="default: jsonl for .jsonl/.ndjson, else csv")
    add("--encoding", default="utf-8", help="the file's text encoding (default: %(default)s)")
    add(
        "--template",
        "--template-id",
        dest="template",
        type=_template,
        metavar="UUID",
        help="aiSettingsTemplateId for rows that name none (default: the account's default)",
    )
    add(
        "--update-existing",
        action="store_true",
        help="updateExisting=true for rows that say nothing (default: false)",
    )
    add(
        "--region",
        type=_region,
        metavar="CC",
        help="region of numbers not in +E.164 form, for rows that name none "
        "(default: LEVERS_DEFAULT_REGION; without either such numbers are rejected)",
    )
    add("--number-column", metavar="NAME", help="the column (or key) holding the number")
    add(
        "--metadata-columns",
        type=_names,
        default=(),
        metavar="A,B",
        help="columns copied into each contact's metadata",
    )
    add(
        "--prompt-tag-columns",
        type=_names,
        default=(),
        metavar="A,B",
        help="columns copied into each contact's promptTags",
    )
    add(
        "--rejects",
        type=Path,
        metavar="PATH",
        help="where rejected rows go, with line, reason and message (default: FILE.rejects.csv "
        "or FILE.rejects.jsonl beside FILE; written only when a row is rejected)",
    )
    add("--dry-run", action="store_true", help="read and validate only; enqueue nothing")
    once = parser.add_mutually_exclusive_group()
    once.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted import of this file after its last recorded line",
    )
    once.add_argument(
        "--force", action="store_true", help="import again a file that was imported already"
    )
    add(
        "--jobs",
        type=positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes validating rows (default: the CPU count, %(default)s here)",
    )
    add("--json", action="store_true", help="print the summary as one JSON object")
    add("--no-progress", action="store_true", help="no progress bar (shown on a terminal only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fmt = args.format or ("jsonl" if args.file.suffix in {".jsonl", ".ndjson"} else "csv")
    if not args.file.is_file():
        raise fail(PROG, f"no such file: {args.file}")
    settings = settings_or_exit(prog=PROG)
    rejects = RejectsFile(args.rejects or default_path(args.file, fmt), fmt)
    if problem := rejects.check_writable():
        raise fail(PROG, f"{problem}; pass --rejects PATH")
    try:
        facts = inspect(args.file, args.encoding)
    except LookupError:
        raise fail(PROG, f"unknown encoding {args.encoding!r}") from None
    except (FileError, OSError) as exc:
        raise fail(PROG, f"{args.file}: {exc}") from None
    columns = ColumnMap.build(args.number_column, args.metadata_columns, args.prompt_tag_columns)
    try:
        # The header and the first row, before Redis is asked anything.
        header = peek(facts, fmt, args.encoding)
        if header is not None:
            plan_header(header, columns)
    except (FileError, HeaderError) as exc:
        raise fail(PROG, f"{args.file}: {exc}") from None
    defaults = Defaults(args.template, args.update_existing, args.region)
    record = None if args.dry_run else _record(settings, facts, columns, defaults, args.json)
    return _run(args, fmt, facts, columns, defaults, settings, rejects, record)


def _record(
    settings: Settings, facts: FileFacts, columns: ColumnMap, defaults: Defaults, quiet: bool
) -> ImportRecord:
    from worker.broker import build_broker

    client = redis_or_exit(settings, PROG)
    broker = build_broker(settings, client=client)
    mark_producer(broker)
    if warning := no_worker_warning(client, settings):
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    options = {**columns.options(), **defaults.__dict__}
    return ImportRecord(
        broker,
        Keys(settings.namespace),
        facts,
        options,
        settings.import_retention_seconds,
        max_backlog_bytes=settings.max_backlog_bytes,
        durability=Durability(settings.redis_min_replicas, settings.redis_wait_timeout_ms),
    )


def _run(
    args: argparse.Namespace,
    fmt: str,
    facts: FileFacts,
    columns: ColumnMap,
    defaults: Defaults,
    settings: Settings,
    rejects: RejectsFile,
    record: ImportRecord | None,
) -> int:
    bar = progress_bar(facts, args.no_progress)
    importer = Importer(
        facts,
        fmt,
        args.encoding,
        columns,
        defaults,
        settings.contact_rules,
        rejects,
        record,
        jobs=args.jobs,
        on_progress=lambda line: bar(line),
    )
    start = Progress()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if record is not None:
            start = record.begin(resume=args.resume, force=args.force)
            if args.resume and not start.line and not args.json:
                print(f"{PROG}: nothing recorded to resume for {facts.path}: from line 1")
        outcome = importer.run(start)
    except ImportRefused as exc:
        if record is not None and record.began:
            raise fail(PROG, f"{facts.path}: {exc} {_through(record)}", INTERRUPTED) from None
        raise fail(PROG, f"{facts.path}: {exc}") from None
    except (FileError, HeaderError) as exc:
        if record is not None:
            record.discard()
        raise fail(PROG, f"{facts.path}: {exc}") from None
    except (KeyboardInterrupt, redis.RedisError) as exc:
        if isinstance(exc, KeyboardInterrupt):
            why = "interrupted"
        else:
            why = f"Redis at {describe(settings)} failed ({redis_problem(exc)})"
        if record is None:
            raise fail(
                PROG, f"{facts.path}: {why} (dry run: nothing enqueued)", INTERRUPTED
            ) from None
        if not record.began:
            raise fail(PROG, f"{facts.path}: {why}; nothing was enqueued") from None
        raise fail(
            PROG,
            f"{facts.path}: {why}; {_through(record)}; run the same command with --resume to "
            "continue",
            INTERRUPTED,
        ) from None
    finally:
        rejects.close()
        bar(None)
    print_summary(outcome, rejects, args.json, settings)
    return 1 if outcome.total.rejected_total or outcome.run.unconfirmed else 0


def _through(record: ImportRecord) -> str:
    if record.line == 0:
        return "nothing was enqueued"
    return f"every row through line {record.line} is enqueued, none after it"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
