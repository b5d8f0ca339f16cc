"""The outbox: everything that happens to a batch after it is cut, until it is sent or dead.

    cut ─► queued ─► claimed ─► sending ─► sent | dead | split
            ▲           │          │
            └── retry ◄─┴──────────┘

The batch's record in Redis is the one authority on its state, attempts and retries; each
transition is one Lua call. A send message on the `levers.batches` queue is only a token that
asks for one request: `pick` decides which batch it sends (round robin across batch keys). A
retry is not a delayed message: `finish` makes the batch due again in the inflight schedule,
and the reaper (`reap`, run by every worker's flusher) hands it a token when that time comes.
Lost tokens, dead attempts and cut batches whose token never reached the queue are found the
same way.

An attempt's outcome is one value (`Sent`, `Retry`, `Dead`, `Split`); `finish` writes it to
the batch's own record, with its dead letters and child batches, atomically.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import dramatiq
import redis

from worker.broker import send_message
from worker.buffers import Due, new_batch_id, read_due
from worker.contacts import DEFAULT_TEMPLATE, parse_batch_key
from worker.deadletters import UNKNOWN_OUTCOME, letter
from worker.durability import NO_WAIT, Durability
from worker.eligibility import NO_CAPS_RULE, CapsRule, Drop, Hold, Schedule, Send, Verdict
from worker.errors import NotReplicatedError
from worker.keys import Keys
from worker.scripting import Clock, as_text, compact, load_script, time_arg

log = logging.getLogger("levers.outbox")

Entry = tuple[str, dict[str, Any]]  # (contact id, the contact as Levers takes it)
PickVerdict = Literal[
    "claimed", "unknown", "busy", "sent", "dead", "split", "held", "missing", "idle"
]
IN_FLIGHT_STATES = ("cut", "queued", "claimed", "sending")


@dataclass(frozen=True)
class OutboxConfig:
    # A cut batch whose token is not on the queue by then gets one from the reaper, s.
    grace_seconds: float = 15.0
    # A queued batch not claimed by then gets a fresh token (its token was lost), s.
    requeue_after_seconds: float = 300.0
    send_lease_seconds: float = 120.0
    batch_retention_seconds: int = 86400


@dataclass(frozen=True)
class Claim:
    verdict: PickVerdict
    batch_id: str = ""
    batch_key: str = ""
    contacts: tuple[Entry, ...] = ()
    attempts: int = 0
    first_attempt_at: float = 0.0  # seconds, the shared clock
    elapsed: float = 0.0  # seconds since the first attempt, by the shared clock
    appended_at: tuple[float, ...] = ()  # seconds each contact was appended (shared clock)
    schedules: tuple[Schedule, ...] = ()
    stored: tuple[Any, ...] = ()  # each contact as the record stores it

    def keep(self, indexes: list[int]) -> Claim:
        """The same claim with only these contacts (the rest were taken out at begin)."""
        return replace(
            self,
            contacts=tuple(self.contacts[i] for i in indexes),
            appended_at=tuple(self.appended_at[i] for i in indexes),
            schedules=tuple(self.schedules[i] for i in indexes),
            stored=tuple(self.stored[i] for i in indexes),
        )


# -- outcomes of one attempt ------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    status: int


@dataclass(frozen=True)
class Retry:
    delay_seconds: float
    status: int | None = None
    detail: str = ""
    throttled: bool = False  # a 429: this attempt does not count
    cause: str = ""  # for metrics and logs: the status, "connection" or "auth"


@dataclass(frozen=True)
class Dead:
    reason: str
    status: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Split:
    """A 422: the refused contacts (by index, with Levers' message) are dead-lettered as
    `reason`; the rest go on in new batches (`parts`, lists of indexes)."""

    status: int
    detail: str
    reason: str
    refused: dict[int, str] = field(default_factory=dict)
    parts: tuple[tuple[int, ...], ...] = ()


Outcome = Sent | Retry | Dead | Split


@dataclass(frozen=True)
class Gate:
    """What stands between a claimed batch and its request, besides windows (gate.lua)."""

    now: float  # seconds, the shared clock
    paused: bool
    cancelled: bool
    suppressed: tuple[bool, ...]
    capped_until: tuple[int, ...]  # ms, the shared clock; 0: within its caps
    # The cap that decides each capped_until: CapsRule.describe() names it; '' when free.
    capped_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Begun:
    """What `begin` made of a claim: `code` is send (go: `claim` holds what to send), empty
    (every contact was held or dead-lettered), lost (the lease), stale (decide again), or
    paused (its template is: nothing was done)."""

    code: Literal["send", "empty", "lost", "stale", "paused"]
    now: float  # seconds, the shared clock
    claim: Claim
    held: int = 0
    dropped: tuple[str, ...] = ()  # the reason of each contact dead-lettered


@dataclass(frozen=True)
class InFlight:
    batches: dict[str, int]
    contacts: dict[str, int]


class Outbox:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        config: OutboxConfig,
        broker: dramatiq.Broker,
        clock: Clock | None = None,
        durability: Durability = NO_WAIT,
    ) -> None:
        self.client = client
        self.keys = keys
        self.config = config
        self.broker = broker
        self.clock = clock
        # begin and finish wait for LEVERS_REDIS_MIN_REPLICAS; queue and reap need not: what
        # they write, the reaper writes again if a failover loses it (worker/durability.py).
        self.durability = durability
        self._queued = load_script(client, "queued", "states")
        self._pick = load_script(client, "pick", "states", "lease")
        self._gate = load_script(client, "gate", "gates", flags="no-writes")
        self._begin = load_script(client, "begin", "states", "entries", "gates")
        self._finish = load_script(client, "finish", "states", "gates")
        self._reap = load_script(client, "reap", "states")
        self._due = load_script(client, "due", flags="no-writes")

    # -- tokens ------------------------------------------------------------------------

    def queue(self, batch_id: str) -> None:
        """Put a send token for a cut batch on the queue, then mark the batch `queued`.

        If the process dies in between, the batch stays `cut` in the inflight schedule and the
        reaper queues it after the grace period.
        """
        self.broker.enqueue(send_message(batch_id))
        self._queued(
            keys=[self.keys.batch(batch_id), self.keys.inflight, self.keys.gauges],
            args=[
                time_arg(self.clock),
                batch_id,
                int(self.config.requeue_after_seconds * 1000),
            ],
        )

    def due(self, limit: int = 100) -> Due:
        """Batches whose inflight time has come (oldest first), and the next such time."""
        return read_due(self._due, self.keys.inflight, self.clock, limit)

    def reap(self, batch_ids: list[str]) -> list[str]:
        """Look at due batches; put a token on the queue for each that needs one (a lost
        token, a retry come due, an attempt whose lease ran out). Returns those batch ids."""
        if not batch_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.hget(self.keys.batch(batch_id), "key")
        batch_keys = [as_text(k) if k is not None else "" for k in pipe.execute()]
        look = new_batch_id()  # tells this call run again from another worker's look
        pipe = self.client.pipeline(transaction=False)
        for batch_id, batch_key in zip(batch_ids, batch_keys, strict=True):
            self._reap(
                keys=[
                    self.keys.batch(batch_id),
                    self.keys.inflight,
                    self.keys.ready_keys,
                    self.keys.ready(batch_key),
                    self.keys.gauges,
                ],
                args=[
                    time_arg(self.clock),
                    batch_id,
                    int(self.config.requeue_after_seconds * 1000),
                    self.keys.prefix,
                    look,
                ],
                client=pipe,
            )
        actions = [as_text(a) for a in pipe.execute()]
        to_send = [b for b, action in zip(batch_ids, actions, strict=True) if action == "send"]
        for batch_id in to_send:
            self.broker.enqueue(send_message(batch_id))
        return to_send

    # -- one attempt -------------------------------------------------------------------

    def pick(self, hint: str, owner: str, *, resend_unknown: bool = False) -> Claim:
        """Claim the next batch to send, round robin across batch keys (see pick.lua).

        `hint` is the batch the token names: if its attempt died in flight, the verdict is
        `unknown` for it; otherwise the batch claimed may be another (`Claim.batch_id`).
        """
        verdict, key, contacts, attempts, first_ms, now_ms, batch_id = self._pick(
            keys=[
                self.keys.batch(hint),
                self.keys.inflight,
                self.keys.ready_keys,
                self.keys.gauges,
                self.keys.paused,
            ],
            args=[
                time_arg(self.clock),
                hint,
                int(self.config.send_lease_seconds * 1000),
                owner,
                int(resend_unknown),
                self.keys.prefix,
            ],
        )
        name: PickVerdict = as_text(verdict)  # type: ignore[assignment]
        if name not in ("claimed", "unknown"):
            return Claim(name, batch_id=as_text(batch_id) or hint)
        stored = json.loads(contacts)
        first = int(first_ms) / 1000
        return Claim(
            name,
            batch_id=as_text(batch_id),
            batch_key=as_text(key),
            contacts=tuple((item[0], item[1]) for item in stored),
            attempts=int(attempts),
            first_attempt_at=first,
            elapsed=max(0.0, int(now_ms) / 1000 - first),
            appended_at=tuple(item[2] / 1000 for item in stored),
            schedules=tuple(
                Schedule.from_json(item[3] if len(item) > 3 else None) for item in stored
            ),
            stored=tuple(stored),
        )

    def gate(self, claim: Claim, caps: CapsRule = NO_CAPS_RULE) -> Gate:
        """Read what may stop this batch's contacts now: a pause or cancel of its template,
        suppressed numbers, used-up caps (begin checks the same again)."""
        numbers = [entry["numberToCall"] for _, entry in claim.contacts]
        now_ms, paused, cancelled, *per_contact = self._gate(
            keys=[
                self.keys.batch(claim.batch_id),
                self.keys.suppressed,
                self.keys.paused,
                self.keys.cancelled,
                *(self.keys.calls(n) for n in numbers),
            ],
            args=[time_arg(self.clock), _template(claim.batch_key), caps.json, *numbers],
        )
        return Gate(
            int(now_ms) / 1000,
            bool(int(paused)),
            bool(int(cancelled)),
            tuple(bool(int(v)) for v in per_contact[::3]),
            tuple(int(v) for v in per_contact[1::3]),
            tuple(as_text(v) for v in per_contact[2::3]),
        )

    def begin(
        self,
        claim: Claim,
        owner: str,
        verdicts: list[Verdict] | None = None,
        decided_at: float = 0.0,
        caps: CapsRule = NO_CAPS_RULE,
    ) -> Begun:
        """Mark the claimed batch `sending` just before its request, taking out the contacts
        whose verdict (one per contact, decided at `decided_at` by the shared clock) is not
        Send: back on hold, or dead-lettered, in the same step; and record a call for each
        contact that goes, against its caps (see begin.lua)."""
        verdicts = verdicts or [Send()] * len(claim.contacts)
        kept = [i for i, v in enumerate(verdicts) if isinstance(v, Send)]
        removed: list[Any] = []
        for i, verdict in enumerate(verdicts):
            number = claim.contacts[i][1]["numberToCall"]
            if isinstance(verdict, Hold):
                removed += ["h", number, verdict.release_ms, self._held(claim, i, verdict)]
            elif isinstance(verdict, Drop):
                dl_id, record = letter(claim, i, verdict.reason, None, verdict.detail)
                removed += ["x", verdict.reason, dl_id, compact(record)]
        numbers = [claim.contacts[i][1]["numberToCall"] for i in kept]
        closes = [
            f"{number}|{verdict.until_ms}"
            for number, verdict in zip(numbers, (verdicts[i] for i in kept), strict=True)
            if isinstance(verdict, Send)
        ]
        key = claim.batch_key
        code, now_ms = self.durability.run_script(
            self.client,
            self._begin,
            keys=[
                self.keys.batch(claim.batch_id),
                self.keys.inflight,
                self.keys.gauges,
                self.keys.stats,
                self.keys.held(key),
                self.keys.release(key),
                self.keys.releases,
                self.keys.held_since,
                self.keys.dead,
                self.keys.dead_index,
                self.keys.pending(key),
                self.keys.suppressed,
                self.keys.paused,
                self.keys.cancelled,
                *(self.keys.calls(n) for n in numbers),
            ],
            args=[
                time_arg(self.clock),
                claim.batch_id,
                owner,
                int(self.config.send_lease_seconds * 1000),
                int(decided_at * 1000),
                self.keys.prefix,
                self.config.batch_retention_seconds,
                compact([claim.stored[i] for i in kept]) if removed else "",
                len(kept),
                _template(key),
                caps.json,
                len(removed) // 4,
                *removed,
                *closes,
            ],
            operation="begin",
        )
        now = int(now_ms) / 1000
        names = {1: "send", 2: "empty", 0: "lost", -1: "stale"}
        held = sum(1 for v in verdicts if isinstance(v, Hold))
        dropped = tuple(v.reason for v in verdicts if isinstance(v, Drop))
        return Begun(names[int(code)], now, claim.keep(kept), held, dropped)  # type: ignore[arg-type]

    def _held(self, claim: Claim, index: int, verdict: Hold) -> str:
        """The held entry (entries.lua's layout) of a contact going back on hold."""
        contact_id, entry = claim.contacts[index]
        schedule = claim.schedules[index]
        return "\n".join(
            [
                json.dumps(contact_id),
                compact(entry),
                "0",  # since: begin.lua's now
                schedule.to_json(),
                verdict.reason,
                str(schedule.expire_ms or 0),
            ]
        )

    def finish(self, claim: Claim, owner: str, outcome: Outcome) -> list[str] | None:
        """Record an attempt's outcome on the batch's own record. `owner=""` finishes a batch
        whose lease ran out in `sending` (an unknown outcome).

        Returns the ids of the child batches made (a `Split`; their tokens are queued here),
        or None when the caller no longer owned the batch and nothing was recorded.
        """
        children, letters = self._split_parts(claim, outcome)
        child_ids = [new_batch_id() for _ in children]
        status = getattr(outcome, "status", None)
        detail = outcome.reason if isinstance(outcome, Dead) else getattr(outcome, "detail", "")
        args: list[Any] = [
            time_arg(self.clock),
            claim.batch_id,
            owner,
            _name(outcome),
            "" if status is None else status,
            detail,
            self.config.batch_retention_seconds,
            int(self.config.grace_seconds * 1000),
            int(outcome.delay_seconds * 1000) if isinstance(outcome, Retry) else 0,
            len(claim.contacts) if isinstance(outcome, Sent) else 0,
            int(isinstance(outcome, Retry) and outcome.throttled),
            self.keys.prefix,
            _template(claim.batch_key),
            int(_not_called(outcome)),
            len(children),
            *child_ids,
            *(compact(child) for child in children),
        ]
        for dl_id, record in letters:
            args += [dl_id, compact(record)]
        keys = [
            self.keys.batch(claim.batch_id),
            self.keys.inflight,
            self.keys.stats,
            self.keys.gauges,
            self.keys.dead,
            self.keys.dead_index,
            self.keys.ready(claim.batch_key),
            self.keys.ready_keys,
            *(self.keys.batch(child) for child in child_ids),
            *(self.keys.calls(entry["numberToCall"]) for _, entry in claim.contacts),
        ]
        try:
            done = self.durability.run_script(self.client, self._finish, keys, args, "finish")
        except NotReplicatedError as exc:
            # Recorded on the primary, and the request cannot be taken back: go on. Should a
            # failover lose the record, the batch is `sending` there and becomes an unknown
            # outcome; this line tells the operator which one.
            log.warning(
                "batch outcome not confirmed by enough replicas",
                extra={"batch_id": claim.batch_id, "outcome": _name(outcome)},
            )
            done = exc.result
        if not done:
            return None
        for child in child_ids:
            self.queue(child)
        return child_ids

    def _split_parts(
        self, claim: Claim, outcome: Outcome
    ) -> tuple[list[list[Any]], list[tuple[str, dict[str, Any]]]]:
        """The child batches and dead letters an outcome makes."""
        if isinstance(outcome, Dead):
            indexes = range(len(claim.contacts))
            return [], [
                letter(claim, i, outcome.reason, outcome.status, outcome.detail) for i in indexes
            ]
        if isinstance(outcome, Split):
            children = [[claim.stored[i] for i in part] for part in outcome.parts if part]
            letters = [
                letter(claim, i, outcome.reason, outcome.status, message)
                for i, message in sorted(outcome.refused.items())
            ]
            return children, letters
        return [], []

    # -- reading -----------------------------------------------------------------------

    def in_flight(self) -> InFlight:
        """Batches and contacts per in-flight state: a few counters, whatever the backlog."""
        raw = {as_text(k): int(v) for k, v in self.client.hgetall(self.keys.gauges).items()}
        return InFlight(
            {s: raw.get(f"batches:{s}", 0) for s in IN_FLIGHT_STATES},
            {s: raw.get(f"contacts:{s}", 0) for s in IN_FLIGHT_STATES},
        )

    def batch(self, batch_id: str) -> dict[str, str]:
        raw = self.client.hgetall(self.keys.batch(batch_id))
        return {as_text(k): as_text(v) for k, v in raw.items()}


def _name(outcome: Outcome) -> str:
    return {Sent: "sent", Retry: "retry", Dead: "dead", Split: "split"}[type(outcome)]


def _template(batch_key: str) -> str:
    """The template a batch key belongs to ("default" for the account's default)."""
    template_id, _ = parse_batch_key(batch_key)
    return template_id or DEFAULT_TEMPLATE


def _not_called(outcome: Outcome) -> bool:
    """True when Levers surely did not call the batch's numbers: the calls begin recorded
    against their caps are forgotten. A request that was sent, or whose outcome is unknown,
    counts."""
    if isinstance(outcome, Sent):
        return False
    return not (isinstance(outcome, Dead) and outcome.reason == UNKNOWN_OUTCOME)
