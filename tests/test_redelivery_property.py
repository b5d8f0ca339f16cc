"""G2 as a property: random interleavings of appends, redeliveries and cuts, on a real
redis-server, never put a number in two cut batches within the dedupe window.

Hypothesis drives a state machine: new contact messages (a few numbers, so they collide),
redeliveries of any message seen so far (dramatiq delivers at least once, before or after
its batch was cut), size cuts (batches of 3), time cuts and the clock moving on. Every step
is checked against what was cut so far.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from tests.conftest import FakeClock
from tests.servers import RedisServer
from worker.buffers import BufferConfig, Buffers
from worker.contacts import Contact
from worker.keys import Keys

NUMBERS = [f"+96650123{i:04d}" for i in range(4)]
EVENTS = ["event-1", "event-2", "event-3"]
TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
WINDOW_SECONDS = 3600


def make_machine(server: RedisServer) -> type[RuleBasedStateMachine]:
    client = redis.Redis.from_url(server.url)

    class Interleavings(RuleBasedStateMachine):
        messages = Bundle("messages")

        @initialize(keyed=st.booleans())
        def start(self, keyed: bool) -> None:
            client.flushall()
            self.keyed = keyed  # dedupe by the producer's key instead of the number
            self.clock = FakeClock()
            self.buffers = Buffers(
                client,
                Keys("p"),
                BufferConfig(
                    batch_max_size=3,
                    batch_max_wait_seconds=2.0,
                    dedupe_window_seconds=WINDOW_SECONDS,
                ),
                self.clock,
            )
            self.sent: list[list[list[Any]]] = []  # every cut batch: [contact id, entry, t]
            self.contacts: dict[str, Contact] = {}
            self.serial = 0

        def _take(self, batch_id: str | None) -> None:
            if batch_id is not None:
                raw = client.hget(self.buffers.keys.batch(batch_id), "contacts")
                assert raw is not None
                self.sent.append(json.loads(raw))

        @rule(
            target=messages,
            number=st.sampled_from(NUMBERS),
            event=st.sampled_from(EVENTS),
            template=st.sampled_from([None, TEMPLATE]),
        )
        def new_message(self, number: str, event: str, template: str | None) -> str:
            self.serial += 1
            contact_id = f"m{self.serial}"
            # With keys, an event always concerns one number (as a webhook's id would).
            if self.keyed:
                number = NUMBERS[EVENTS.index(event)]
            contact = Contact(
                number=number,
                template_id=template,
                dedupe_key=event if self.keyed else None,
                first_name=f"v{self.serial}",
            )
            self.contacts[contact_id] = contact
            result = self.buffers.append(contact, contact_id)
            assert result.status != "redelivered"
            self._take(result.batch_id)
            return contact_id

        @rule(contact_id=messages)
        def redeliver(self, contact_id: str) -> None:
            result = self.buffers.append(self.contacts[contact_id], contact_id)
            assert result.status == "redelivered", f"{contact_id} was {result.status} again"
            assert result.batch_id is None

        @rule(seconds=st.sampled_from([0.1, 0.7, 2.0]))
        def time_passes(self, seconds: float) -> None:
            self.clock.advance(seconds)
            for key in self.buffers.due().members:
                while (cut := self.buffers.cut_due(key)) is not None:
                    self._take(cut[0])

        @invariant()
        def no_number_twice_within_the_window(self) -> None:
            if not hasattr(self, "sent"):
                return
            ids = Counter(item[0] for batch in self.sent for item in batch)
            assert all(n == 1 for n in ids.values()), "a contact id was cut twice"
            for batch in self.sent:
                numbers = [item[1]["numberToCall"] for item in batch]
                assert len(numbers) == len(set(numbers)), "one number twice in one batch"
            # Per batch key (template), each number (or, with keys, each event) once.
            seen: Counter[tuple[str | None, str]] = Counter()
            for batch in self.sent:
                for contact_id, entry, _ in batch:
                    contact = self.contacts[contact_id]
                    token = contact.dedupe_key if self.keyed else entry["numberToCall"]
                    seen[(contact.template_id, str(token))] += 1
            twice = [token for token, n in seen.items() if n > 1]
            assert not twice, f"called twice within the dedupe window: {twice}"

    return Interleavings


def test_no_number_in_two_cut_batches_whatever_the_interleaving(
    redis_server: RedisServer,
) -> None:
    machine = make_machine(redis_server)
    machine.TestCase.settings = settings(
        max_examples=150,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()
