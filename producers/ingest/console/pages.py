"""What each console page shows, read from Redis in bounded steps.

A page reads counters (the gauges the scripts keep), the first entries of an index, or one
page of a scan with a budget: never the whole backlog, so a page costs the same with ten
contacts waiting or a million (`python -m benchmarks.console` measures it). A filtered list
that finds fewer matches than a page within its budget says how far it looked and offers the
next stretch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis

from worker.admin.status import status_report
from worker.contacts import DEFAULT_TEMPLATE, batch_key, mask_number
from worker.control import Control, template_of
from worker.deadletters import DeadLetters
from worker.holds import HeldContact, Holds
from worker.keys import Keys
from worker.last_error import LastError
from worker.outcomes import OutcomeStore
from worker.policy.zones import recipient_for
from worker.runtime import buffer_config
from worker.scripting import as_text, redis_now
from worker.settings import Settings
from worker.suppression import Entry, Suppression

PAGE = 50  # rows a list page shows
SCAN_BUDGET = 3000  # entries a filtered list reads at most per request
CHUNK = 500
RATE_WINDOW_SECONDS = 10
OUTBOX_LOOK = 500  # in-flight batches a template page looks through for its own


@dataclass
class Listing:
    """One page of a list: its rows, where the next page starts (None: the end), how many
    entries were read to find them, and how many there are in all."""

    rows: list[Any]
    next_start: int | None
    scanned: int
    total: int
    start: int = 0
    filtered: bool = False


@dataclass
class TemplateView:
    template: str
    paused: dict[str, Any] | None
    keys: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    holds: list[HeldContact] = field(default_factory=list)


class Pages:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self.settings = settings
        self.client = client
        self.keys = Keys(settings.namespace)
        config = buffer_config(settings)
        self.holds = Holds(client, self.keys, config)
        self.dead = DeadLetters(client, self.keys)
        self.suppression = Suppression(client, self.keys)
        self.outcomes = OutcomeStore(client, self.keys, settings.outcome_retention_seconds)

    # -- overview ----------------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        """`levers-admin status`'s report (one place gathers it), with what only a live page
        needs beside it: the send rate against the limit in force, the 429 pause, the last
        failed send, and the templates with contacts waiting."""
        report = status_report(self.settings, self.client, actions=20)
        now_ms = int(redis_now(self.client) * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zcount(self.keys.rate, now_ms - RATE_WINDOW_SECONDS * 1000, now_ms)
        pipe.zrangebyscore(self.keys.contact_rate, now_ms - 60_000, now_ms)
        pipe.pttl(self.keys.pause)
        pipe.hget(self.keys.adaptive, "rate")
        requests, contact_log, pause_ms, adaptive = pipe.execute()
        templates = {t: {"pending": 0, "held": 0} for t in report["paused"]}
        for kind, rows in (
            ("pending", report["pending"]),
            ("held", report["held"]["by_batch_key"]),
        ):
            for row in rows:
                waiting = templates.setdefault(
                    template_of(row["batch_key"]), {"pending": 0, "held": 0}
                )
                waiting[kind] += row["contacts"]
        batches = report["batches_in_flight"]
        return {
            "status": report,
            "ready_batches": batches["cut"] + batches["queued"],
            "request_rate": requests / RATE_WINDOW_SECONDS,
            "request_limit": self.settings.max_requests_per_second,
            # With LEVERS_ADAPTIVE_RATE, the rate the senders share now (worker/ratelimit.py).
            "adaptive_limit": float(adaptive)
            if self.settings.adaptive_rate and adaptive is not None
            else None,
            "contacts_last_minute": sum(
                int(as_text(m).rpartition(":")[2] or 0) for m in contact_log
            ),
            "contact_limit": self.settings.max_contacts_per_minute,
            "pause_seconds": max(0, int(pause_ms)) / 1000,
            "last_error": LastError(self.client, self.keys).read(),
            "templates": sorted(templates.items()),
        }

    # -- one template ------------------------------------------------------------------------

    def template(self, template: str) -> TemplateView:
        paused = Control.read_paused(self.client, self.keys)
        view = TemplateView(template, paused.get(template) or paused.get("*"))
        template_id = None if template == DEFAULT_TEMPLATE else template
        for update in (False, True):
            key = batch_key(template_id, update)
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(self.keys.order(key))
            pipe.hlen(self.keys.held(key))
            pipe.zcard(self.keys.ready(key))
            pipe.zrange(self.keys.release(key), 0, 0, withscores=True)
            pending, held, ready, first = pipe.execute()
            release = float(first[0][1]) / 1000 if first and first[0][1] < 2**52 else None
            view.keys.append(
                {
                    "batch_key": key,
                    "pending": int(pending),
                    "held": int(held),
                    "ready": int(ready),
                    "next_release": release,
                }
            )
            first, _ = self.holds.key_page(key, 0, PAGE // 2)
            view.holds += [held for _, held in first]
        view.batches = self._batches_of(template)
        return view

    def _batches_of(self, template: str) -> list[dict[str, Any]]:
        """Batches of `template` among the first OUTBOX_LOOK of the outbox (in flight)."""
        ids = [as_text(i) for i in self.client.zrange(self.keys.inflight, 0, OUTBOX_LOOK - 1)]
        pipe = self.client.pipeline(transaction=False)
        for batch_id in ids:
            pipe.hmget(self.keys.batch(batch_id), "key", "state", "size", "attempts", "detail")
        rows = []
        for batch_id, (key, state, size, attempts, detail) in zip(ids, pipe.execute(), strict=True):
            if key is None or template_of(as_text(key)) != template:
                continue
            rows.append(
                {
                    "id": batch_id,
                    "batch_key": as_text(key),
                    "state": as_text(state or b""),
                    "size": int(size or 0),
                    "attempts": int(attempts or 0),
                    "detail": as_text(detail or b""),
                }
            )
        return rows[:PAGE]

    # -- dead letters ------------------------------------------------------------------------

    def dead_letters(self, *, reason: str = "", template: str = "", start: int = 0) -> Listing:
        """Newest first, filtered by reason and template, one page from rank `start`."""
        total = self.dead.count()
        rows: list[dict[str, Any]] = []
        rank, scanned = start, 0
        while len(rows) < PAGE and scanned < SCAN_BUDGET:
            ids = [
                as_text(i)
                for i in self.client.zrevrange(self.keys.dead_index, rank, rank + CHUNK - 1)
            ]
            if not ids:
                break
            for record in self.dead.get(ids):
                rank += 1
                scanned += 1
                if reason and record.get("reason") != reason:
                    continue
                if template and template_of(str(record.get("batch_key"))) != template:
                    continue
                rows.append(record)
                if len(rows) == PAGE:
                    break
            if len(ids) < CHUNK and len(rows) < PAGE:
                rank = total
                break
        more = rank < total
        return Listing(
            rows, rank if more else None, scanned, total, start, bool(reason or template)
        )

    def dead_letter(self, dl_id: str) -> dict[str, Any] | None:
        found = self.dead.get([dl_id])
        return found[0] if found else None

    # -- holds -------------------------------------------------------------------------------

    def held(self, *, reason: str = "", key: str = "", start: int = 0) -> Listing:
        """Oldest hold first (one batch key's: the first released first), filtered by reason
        and batch key, one page from rank `start`."""
        # One batch key's holds have an index of their own (in release order); all of them,
        # the oldest-first index.
        index = self.keys.release(key) if key else self.keys.held_since
        total = int(self.client.zcard(index))
        rows: list[HeldContact] = []
        rank = start
        while len(rows) < PAGE and rank - start < SCAN_BUDGET and rank < total:
            if key:
                page, after = self.holds.key_page(key, rank, CHUNK, reason=reason)
            else:
                page, after = self.holds.page(rank, CHUNK, reason=reason)
            rank = after
            for position, held in page:
                rows.append(held)
                if len(rows) == PAGE:
                    rank = position + 1
                    break
        filtered = bool(reason or key)
        return Listing(rows, rank if rank < total else None, rank - start, total, start, filtered)

    # -- suppression -------------------------------------------------------------------------

    def suppressed(self, cursor: int = 0) -> tuple[list[Entry], int, int]:
        entries, after = self.suppression.page(cursor, PAGE)
        return entries, after, self.suppression.count()

    # -- contact and batch -------------------------------------------------------------------

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        return self.outcomes.contact(contact_id)

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        found = self.outcomes.batch(batch_id)
        if found is None:
            return None
        raw = self.client.hget(self.keys.batch(batch_id), "contacts")
        contacts = json.loads(as_text(raw)) if raw else []
        found["contacts"] = [
            {"contact_id": c[0], "number": c[1].get("numberToCall", "")}
            for c in (contacts if isinstance(contacts, list) else [])
            if isinstance(c, list) and len(c) >= 2 and isinstance(c[1], dict)
        ]
        return found


def local_times(held: HeldContact) -> list[str]:
    """When a hold is released, in the recipient's own zone(s), e.g. `09:00 Asia/Riyadh`."""
    if held.release_at is None:
        return []
    zones = recipient_for(held.number, held.schedule.time_zone).zones
    moment = datetime.fromtimestamp(held.release_at, UTC)
    return [f"{moment.astimezone(ZoneInfo(z)):%Y-%m-%d %H:%M} {z}" for z in zones[:3]]


def masked(number: str | None) -> str:
    return mask_number(number) if number else ""
