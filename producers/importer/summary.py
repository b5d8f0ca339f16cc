"""What `levers-enqueue` shows: a progress bar on a terminal, and the summary (text or JSON)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from producers.importer.rejects import RejectsFile
from producers.importer.run import LISTED, Outcome
from producers.importer.source import FileFacts
from worker.settings import Settings

SHOWN = 20  # rejects printed in the text summary


def progress_bar(facts: FileFacts, off: bool) -> Any:
    """A callable taking the line reached (None closes): a tqdm bar on a terminal only."""
    if off or not sys.stderr.isatty():
        return lambda line: None
    from tqdm import tqdm

    # A terminal that reports no size (a fresh pty) gets 80 x 24: tqdm draws nothing in 0 x 0.
    size = os.get_terminal_size(sys.stderr.fileno())
    bar = tqdm(
        total=facts.lines,
        unit=" lines",
        unit_scale=True,
        file=sys.stderr,
        leave=False,
        ncols=size.columns or 80,
        nrows=size.lines or 24,
    )

    def update(line: int | None) -> None:
        if line is None:
            bar.close()
        else:
            bar.update(line - bar.n)

    return update


def summary(outcome: Outcome, rejects: RejectsFile, settings: Settings) -> dict[str, Any]:
    total = outcome.total
    listed = outcome.rejects
    return {
        "file": str(outcome.facts.path),
        "sha256": outcome.facts.sha256,
        "namespace": settings.namespace,
        "dry_run": outcome.dry_run,
        "resumed_after_line": outcome.resumed_after,
        "rows": total.rows,
        "accepted": total.accepted,
        "rejected": total.rejected_total,
        "rejected_by_reason": dict(sorted(total.rejected.items())),
        # Accepted in this run, not confirmed by LEVERS_REDIS_MIN_REPLICAS replicas.
        "unconfirmed": outcome.run.unconfirmed,
        "this_run": {
            "rows": outcome.run.rows,
            "accepted": outcome.run.accepted,
            "rejected": outcome.run.rejected_total,
        },
        "rejects": [r.to_json() for r in listed],
        "rejects_left_out": total.rejected_total - len(listed),
        "rejects_file": str(rejects.path) if outcome.rejects_file_written else None,
    }


def print_summary(
    outcome: Outcome, rejects: RejectsFile, as_json: bool, settings: Settings
) -> None:
    data = summary(outcome, rejects, settings)
    if as_json:
        if data["rejects_left_out"]:
            data["rejects_note"] = (
                f"the first {LISTED} rejects are listed; all {data['rejected']} are in "
                f"{data['rejects_file']}"
            )
        print(json.dumps(data, indent=2))
        return
    verb = "would be accepted" if outcome.dry_run else "accepted"
    rows = "row" if data["rows"] == 1 else "rows"
    head = "dry run, nothing enqueued: " if outcome.dry_run else ""
    resumed = f" (resumed after line {outcome.resumed_after})" if outcome.resumed_after else ""
    print(
        f"{data['file']}: {head}{data['rows']} {rows}, {data['accepted']} {verb}, "
        f"{data['rejected']} rejected{resumed}"
    )
    if data["unconfirmed"]:
        print(
            f"  {data['unconfirmed']} accepted rows were not confirmed by enough Redis replicas "
            "(LEVERS_REDIS_MIN_REPLICAS): a failover now loses them with this import's record, "
            "and --resume then enqueues them again"
        )
    for reason, count in data["rejected_by_reason"].items():
        print(f"  {reason}: {count}")
    for reject in outcome.rejects[:SHOWN]:
        print(f"  line {reject.line}: {reject.reason}: {reject.message}")
    if data["rejected"] > SHOWN:
        print(f"  … {data['rejected'] - SHOWN} more")
    if data["rejects_file"]:
        print(f"rejected rows (line, reason, message, the row): {data['rejects_file']}")
