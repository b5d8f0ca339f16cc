"""Producer API: hand single contacts to levers-batcher.

    from producers import enqueue_contact, enqueue_contacts
    enqueue_contact("+966501234567", first_name="Sara", template_id="…")
    result = enqueue_contacts(rows)   # pipelined; result.accepted / result.rejected

Contacts are validated here, before anything is enqueued, and again by the worker.
"""

from producers.api import (
    EnqueueResult,
    Producer,
    Rejection,
    enqueue_contact,
    enqueue_contacts,
    suppress,
)

__all__ = [
    "EnqueueResult",
    "Producer",
    "Rejection",
    "enqueue_contact",
    "enqueue_contacts",
    "suppress",
]
