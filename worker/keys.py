"""Every Redis key levers-batcher uses, built in one place under one namespace.

Two deployments (staging, production) can share a Redis server by using different
`LEVERS_NAMESPACE` values; nothing here or in dramatiq writes outside `{namespace}:`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    namespace: str

    @property
    def dramatiq(self) -> str:
        """Prefix handed to dramatiq's RedisBroker for its queues and heartbeats."""
        return f"{self.namespace}:dramatiq"

    @property
    def dramatiq_heartbeats(self) -> str:
        """dramatiq's sorted set broker id -> last heartbeat (ms), written by every fetch (and
        enqueue) of every worker and producer: who is consuming this namespace."""
        return f"{self.dramatiq}:__heartbeats__"

    def pending(self, batch_key: str) -> str:
        """Hash E.164 -> stored contact: the open batch of one batch key."""
        return f"{self.namespace}:pending:{batch_key}"

    def order(self, batch_key: str) -> str:
        """Sorted set E.164 -> append time (ms): arrival order of the pending hash."""
        return f"{self.namespace}:order:{batch_key}"

    def held(self, batch_key: str) -> str:
        """Hash E.164 -> held entry (see lua/entries.lua): contacts of one batch key waiting
        for their calling window, their not_before, or an operator."""
        return f"{self.namespace}:held:{batch_key}"

    def release(self, batch_key: str) -> str:
        """Sorted set E.164 -> when (ms) a held contact is looked at again: its release time,
        or its expire_at when that comes first."""
        return f"{self.namespace}:release:{batch_key}"

    @property
    def releases(self) -> str:
        """Sorted set batch key -> the earliest release time (ms) of its held contacts, so any
        worker's flusher finds what is due without scanning every key."""
        return f"{self.namespace}:releases"

    @property
    def held_since(self) -> str:
        """Sorted set "batch_key number" -> when (ms) it was held: the oldest hold, and the
        order operators list holds in."""
        return f"{self.namespace}:held:since"

    @property
    def deadlines(self) -> str:
        """Sorted set batch key -> time (ms) its oldest pending contact is due to be cut.

        Kept in Redis, not in a delayed message, so any live worker cuts an overdue batch.
        """
        return f"{self.namespace}:deadlines"

    def batch(self, batch_id: str) -> str:
        """Hash: one cut batch, its contacts and its lifecycle state (see lua/lease.lua)."""
        return f"{self.namespace}:batch:{batch_id}"

    def reply(self, call_id: str) -> str:
        """A script call's answer, kept for a while under an id of that call only, so that
        the same call run again (its reply lost, redis-py retrying) answers the same and does
        nothing more: release.lua's (released, expired, batches cut) under its first batch
        id, for an hour; pick.lua's claimed batch id under the owner, for the lease."""
        return f"{self.namespace}:reply:{call_id}"

    @property
    def inflight(self) -> str:
        """Sorted set batch id -> time (ms) when the reaper should next look at it.

        Holds every batch not yet sent or dead: the outbox that survives a crash between
        cutting a batch and queueing its send message, and the schedule of retries (a batch
        waiting to be retried is due at its retry time).
        """
        return f"{self.namespace}:inflight"

    def ready(self, batch_key: str) -> str:
        """Sorted set batch id -> time (ms) it may be sent: the batches of one key waiting for
        a send token. Built in pick.lua too, from `prefix`."""
        return f"{self.namespace}:ready:{batch_key}"

    @property
    def ready_keys(self) -> str:
        """Sorted set batch key -> time (ms) it was last served: the round robin of pick.lua."""
        return f"{self.namespace}:ready"

    @property
    def prefix(self) -> str:
        """For pick.lua, the one script that builds key names (and for the scripts that check
        that a key they were given is the one the batch's record names)."""
        return f"{self.namespace}:"

    def message(self, contact_id: str) -> str:
        """Marker that a contact id was handled without owning a dedupe marker (merged, a
        duplicate, or dedupe off): makes its redelivery a no-op (see append.lua)."""
        return f"{self.namespace}:msg:{contact_id}"

    def dedupe(self, batch_key: str, token: str) -> str:
        """Marker of an accepted (batch key, number or producer dedupe key), for the window.
        Holds the contact id that took it, so it is that contact's redelivery marker too."""
        return f"{self.namespace}:dedupe:{batch_key}:{token}"

    @property
    def gauges(self) -> str:
        """Hash of exact counts kept by the scripts that change them, so status and scrapes
        read a few fields instead of every batch: `pending` contacts, `queued` contacts not
        yet aggregated, `batches:<state>` and `contacts:<state>` for batches in flight."""
        return f"{self.namespace}:gauges"

    @property
    def queued_messages(self) -> str:
        """Hash contact message id -> contacts it carries, for messages a producer enqueued
        that the aggregator has not finished: what makes the `queued` gauge exact under
        redelivery (a message is taken off once, whoever handles it)."""
        return f"{self.namespace}:queued"

    @property
    def suppressed(self) -> str:
        """Hash E.164 -> "expire ms|added ms|note" (expire 0 = never): the do-not-call list."""
        return f"{self.namespace}:suppressed"

    @property
    def suppressed_expiry(self) -> str:
        """Sorted set E.164 -> when (ms) its suppression ends, for the entries that end."""
        return f"{self.namespace}:suppressed:expiry"

    def calls(self, number: str) -> str:
        """Sorted set "template|batch id's first 16" -> when (ms) the number was called, kept
        for the longest frequency-cap period: what the caps count (worker/lua/gates.lua)."""
        return f"{self.namespace}:calls:{number}"

    @property
    def paused(self) -> str:
        """Hash template (or "*": all) -> the operator's record of the pause (JSON)."""
        return f"{self.namespace}:paused"

    @property
    def cancelled(self) -> str:
        """Hash template (or "*") -> when (ms) its waiting contacts were cancelled: a batch
        cut before then that an attempt still holds is cancelled when it would be sent."""
        return f"{self.namespace}:cancelled"

    @property
    def cancelled_messages(self) -> str:
        """Hash contact message id -> templates cancelled while it waited in dramatiq's queue
        (comma-separated): the aggregator dead-letters those of its contacts."""
        return f"{self.namespace}:cancelled:messages"

    @property
    def audit(self) -> str:
        """List of operators' actions (JSON: who, what, when, note), newest first, capped."""
        return f"{self.namespace}:audit"

    def console_session(self, digest: str) -> str:
        """String, JSON {user, csrf, at}: one console login, under the SHA-256 of its cookie
        (the cookie itself is never stored), expiring after LEVERS_CONSOLE_SESSION_SECONDS."""
        return f"{self.namespace}:console:session:{digest}"

    def console_flash(self, digest: str) -> str:
        """String: the result of a console session's last action, shown once on its next
        page (then deleted)."""
        return f"{self.namespace}:console:flash:{digest}"

    @property
    def last_error(self) -> str:
        """String, JSON: the last failed send attempt (time, batch, cause, status, Levers'
        words), for the console's overview."""
        return f"{self.namespace}:last_error"

    @property
    def stats(self) -> str:
        """Hash of running totals shown by `levers-admin status`."""
        return f"{self.namespace}:stats"

    @property
    def rejects(self) -> str:
        """List of the most recent rejected contacts (capped, numbers masked, the key expiring
        a while after the last reject), newest first."""
        return f"{self.namespace}:rejects"

    @property
    def rate(self) -> str:
        """Sorted set reservation -> time (ms): the sliding log of the global request pacer."""
        return f"{self.namespace}:rate:requests"

    @property
    def adaptive(self) -> str:
        """Hash of the adaptive mode: current shared request rate and latency average."""
        return f"{self.namespace}:rate:adaptive"

    @property
    def contact_rate(self) -> str:
        """Sorted set "reservation:cost" -> time (ms): the sliding log of contacts per minute."""
        return f"{self.namespace}:rate:contacts"

    @property
    def slots(self) -> str:
        """Sorted set attempt -> lease end (ms): requests on the wire, for LEVERS_MAX_IN_FLIGHT."""
        return f"{self.namespace}:rate:slots"

    @property
    def pause(self) -> str:
        """Time (ms) until which every sender waits, set with a TTL after a 429."""
        return f"{self.namespace}:pause"

    @property
    def dead(self) -> str:
        """Hash dead-letter id -> record JSON: contacts not sent without an operator."""
        return f"{self.namespace}:dead"

    @property
    def dead_index(self) -> str:
        """Sorted set dead-letter id -> time (ms) it was dead-lettered, for listing and purging."""
        return f"{self.namespace}:dead:index"

    def idempotency(self, key: str) -> str:
        """String, the answer levers-ingest gave to a POST with this `Idempotency-Key`, kept
        (LEVERS_INGEST_IDEMPOTENCY_SECONDS) so that a retry enqueues nothing twice."""
        return f"{self.namespace}:ingest:idempotency:{key}"

    def import_record(self, file_sha256: str) -> str:
        """Hash: how far `levers-enqueue` got with the file of this content (for --resume)."""
        return f"{self.namespace}:import:{file_sha256}"

    # -- call outcomes (webhooks, retries, callbacks) ------------------------------------------

    def webhook(self, event_id: str) -> str:
        """String, set when levers-ingest queued the webhook delivery `event_id` (svix-id), kept
        longer than Svix retries a delivery (LEVERS_WEBHOOK_DEDUPE_SECONDS): a duplicate or a
        replayed delivery queues nothing again."""
        return f"{self.namespace}:webhook:{event_id}"

    @property
    def webhook_last(self) -> str:
        """String, time (ms) the last verified call-ended event was recorded: the webhook path
        works (LEVERS_RESEND_UNKNOWN=after_grace resends only while it does)."""
        return f"{self.namespace}:webhook:last"

    def outcome(self, contact_id: str) -> str:
        """String, JSON: the outcome of the call made for one contact id, with a retention
        (LEVERS_OUTCOME_RETENTION_SECONDS)."""
        return f"{self.namespace}:outcome:{contact_id}"

    def batch_outcomes(self, batch_id: str) -> str:
        """Hash contact id -> "deliveryStatus endedReason": the outcomes of one batch's calls."""
        return f"{self.namespace}:outcomes:batch:{batch_id}"

    @property
    def unmatched(self) -> str:
        """Hash event id -> JSON: verified events that match no contact of this namespace."""
        return f"{self.namespace}:outcomes:unmatched"

    @property
    def unmatched_index(self) -> str:
        """Sorted set event id -> time (ms) received: for listing, capping and expiring."""
        return f"{self.namespace}:outcomes:unmatched:index"

    def outcome_labels(self, label: str) -> str:
        """Set of the values of one outcome metric label seen so far (call output, ended
        reason), capped at LEVERS_METRICS_MAX_OUTCOME_LABELS so that every process and replica
        folds the same values into `other`."""
        return f"{self.namespace}:outcomes:labels:{label}"

    def sent_contact(self, contact_id: str) -> str:
        """String, JSON {batch_key, contact}: a contact as it was sent, kept only for templates
        whose policy retries calls (a retry needs its names and prompt tags, which Levers does
        not echo)."""
        return f"{self.namespace}:sent:{contact_id}"

    def retry_lineage(self, contact_id: str) -> str:
        """String "<n>:<original contact id>": this contact is the n-th policy retry of that one."""
        return f"{self.namespace}:retry:of:{contact_id}"

    def retry_scheduled(self, original_id: str, n: int) -> str:
        """String, the contact id of the n-th retry of `original_id`: set together with its
        message, so that a second event (a redelivered webhook) schedules nothing again."""
        return f"{self.namespace}:retry:scheduled:{original_id}:{n}"

    def notified(self, contact_id: str, kind: str) -> str:
        """Marker that the outcome of a contact was handed to its producer (`kind`: actor or
        http), set together with the message that does it."""
        return f"{self.namespace}:notified:{kind}:{contact_id}"

    @property
    def callbacks_dead(self) -> str:
        """Hash callback id -> JSON: outcome callbacks given up after their last attempt."""
        return f"{self.namespace}:callbacks:dead"

    @property
    def callbacks_dead_index(self) -> str:
        """Sorted set callback id -> time (ms) it was given up."""
        return f"{self.namespace}:callbacks:dead:index"

    @property
    def unknown_watch(self) -> str:
        """Sorted set dead-letter id -> time (ms) dead-lettered: `unknown_outcome` dead letters
        waiting for their call-ended event (or for LEVERS_OUTCOME_GRACE_SECONDS)."""
        return f"{self.namespace}:unknown:watch"

    @property
    def unknown_cursor(self) -> str:
        """String, time (ms) up to which the dead-letter index was read for the watch."""
        return f"{self.namespace}:unknown:cursor"
