"""The demo's held contact: one contact enqueued with a `not_before` a few seconds ahead is
shown held, as `levers-admin holds list` shows it to an operator, and then released by the
worker's flusher when it is due and sent.

The same happens to a contact enqueued outside its recipient's calling hours (reason
`window_closed`), only for longer; the demo runs under LEVERS_DEFAULT_WINDOW=always so that its
sample numbers are called whatever the hour here, and shows the hold with `not_before`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping

import redis

from producers.api import Producer
from worker.contacts import mask_number
from worker.holds import Holds
from worker.keys import Keys
from worker.runtime import buffer_config
from worker.sandbox import Sandbox
from worker.scripting import redis_now
from worker.settings import Settings

HELD_NUMBER = "+966559990001"
HOLD_SECONDS = 3.0


def show_a_hold(
    settings: Settings,
    env: Mapping[str, str],
    client: redis.Redis,
    sandbox: Sandbox,
    alive: Callable[[], bool],
    seconds: float = 30,
) -> bool:
    """Enqueue the held contact, print it held and then released; False if it was not."""
    not_before = redis_now(client) + HOLD_SECONDS  # the shared clock, as the worker's
    producer = Producer(settings, check_workers=False)
    try:
        contact_id = producer.enqueue_contact(
            HELD_NUMBER, first_name="Later", not_before=not_before
        )
    finally:
        producer.close()
    masked = mask_number(HELD_NUMBER)
    print(f"\none more contact, {masked}, with not_before {HOLD_SECONDS:g} s from now:")
    holds = Holds(client, Keys(settings.namespace), buffer_config(settings))
    deadline = time.monotonic() + seconds

    def held() -> bool:
        return any(holds.entries(contact_ids=frozenset({contact_id}), limit=1))

    def sent() -> list[float]:
        return [
            request.received_at
            for request in sandbox.accepted()
            if any(c["numberToCall"] == HELD_NUMBER for c in request.body["contacts"])
        ]

    while not held() and not sent():
        if not alive() or time.monotonic() > deadline:
            print("levers demo: the contact with a not_before was never held")
            return False
        time.sleep(0.05)
    print("$ levers-admin holds list")
    listing = subprocess.run(
        [sys.executable, "-m", "worker.admin", "holds", "list"],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    print(listing.stdout.rstrip() or listing.stderr.rstrip())
    while not (arrived := sent()):
        if not alive() or time.monotonic() > deadline:
            print("levers demo: the held contact was not released and sent")
            return False
        time.sleep(0.05)
    late = arrived[0] - not_before
    print(
        f"released when due: {masked} reached the sandbox {late:.1f} s after its not_before "
        f"(released into its batch key's buffer then, it waits up to the batch max wait, "
        f"{settings.batch_max_wait_seconds:g} s, for company; {len(arrived)} request)"
    )
    return len(arrived) == 1
