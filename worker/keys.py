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

    @property
    def deadlines(self) -> str:
        """Sorted set batch key -> time (ms) its oldest pending contact is due to be cut.

        Kept in Redis, not in a delayed message, so any live worker cuts an overdue batch.
        """
        return f"{self.namespace}:deadlines"

    def batch(self, batch_id: str) -> str:
        """Hash: one cut batch, its contacts and its lifecycle state."""
        return f"{self.namespace}:batch:{batch_id}"

    @property
    def inflight(self) -> str:
        """Sorted set batch id -> time (ms) when the reaper should next look at it.

        Holds every batch not yet sent or dead: the outbox that survives a crash between
        cutting a batch and queueing its send message.
        """
        return f"{self.namespace}:inflight"

    def ready(self, batch_key: str) -> str:
        """Sorted set batch id -> time (ms) it may be sent: the batches of one key waiting for
        a send token. Built in Lua too (pick.lua, reap.lua) from `prefix`."""
        return f"{self.namespace}:ready:{batch_key}"

    @property
    def ready_keys(self) -> str:
        """Sorted set batch key -> time (ms) it was last served: the round robin of pick.lua."""
        return f"{self.namespace}:ready"

    @property
    def prefix(self) -> str:
        """For the scripts that build key names themselves (pick.lua, reap.lua)."""
        return f"{self.namespace}:"

    def message(self, message_id: str) -> str:
        """Marker that a contact message was appended: makes redelivery a no-op."""
        return f"{self.namespace}:msg:{message_id}"

    def dedupe(self, batch_key: str, token: str) -> str:
        """Marker of an accepted (batch key, number or producer dedupe key), for the window."""
        return f"{self.namespace}:dedupe:{batch_key}:{token}"

    @property
    def stats(self) -> str:
        """Hash of running totals shown by `levers-admin status`."""
        return f"{self.namespace}:stats"

    @property
    def rejects(self) -> str:
        """List of the most recent rejected contacts (capped), newest first."""
        return f"{self.namespace}:rejects"

    @property
    def rate(self) -> str:
        """Theoretical arrival time of the global request pacer (GCRA)."""
        return f"{self.namespace}:rate:requests"

    @property
    def adaptive(self) -> str:
        """Hash of the adaptive mode: current shared request rate and latency average."""
        return f"{self.namespace}:rate:adaptive"

    @property
    def contact_rate(self) -> str:
        """Theoretical arrival time of the global contacts-per-minute pacer (GCRA)."""
        return f"{self.namespace}:rate:contacts"

    @property
    def slots(self) -> str:
        """Sorted set attempt -> lease end (ms): requests on the wire, for LEVERS_MAX_IN_FLIGHT."""
        return f"{self.namespace}:rate:slots"

    @property
    def pause(self) -> str:
        """Set with a TTL while Levers asked every sender to back off (429)."""
        return f"{self.namespace}:pause"

    @property
    def token(self) -> str:
        """The shared cached bearer token, with a TTL before its `exp`."""
        return f"{self.namespace}:token"

    @property
    def dead(self) -> str:
        """Hash dead-letter id -> record JSON: contacts not sent without an operator."""
        return f"{self.namespace}:dead"

    @property
    def dead_index(self) -> str:
        """Sorted set dead-letter id -> time (ms) it was dead-lettered, for listing and purging."""
        return f"{self.namespace}:dead:index"

    def import_record(self, file_sha256: str) -> str:
        """Hash: how far `levers-enqueue` got with the file of this content (for --resume)."""
        return f"{self.namespace}:import:{file_sha256}"
