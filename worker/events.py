"""Levers' `phone_call.ended` webhook payload, read defensively into the fields we keep.

Levers posts a flat JSON object (no envelope): `providerCallId`, `numberFrom`, `numberTo`,
`providerStatus`, `deliveryStatus` (`pass`/`fail`), `duration`, `summary`, `endedReason`,
`callOutput`, `callOutputReasoning`, `sentimentOutput`, `transcription`, `recordingUrl`, and
`metadata.requestMetadata`, the metadata we sent with the contact (our correlation under
`levers_batcher`, the producer's own keys beside it).

`read_event` never raises: a payload that is not JSON, not an object, or has fields of the
wrong type becomes an event with a `problem` (it is then kept as unmatched, not dropped).

What is kept, and what is not: the outcome fields an operator and a retry rule need
(`deliveryStatus`, `endedReason`, `duration`, `callOutput`, `providerStatus`,
`sentimentOutput`, `providerCallId`) and the number called. The transcription, the summary,
the output's reasoning and the recording URL are personal data we have no use for: they are
dropped here, before anything reaches Redis (see docs/outcomes.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from worker.contacts import RESERVED_METADATA_KEY

# The payload fields kept, as Levers names them.
KEPT_FIELDS = (
    "deliveryStatus",
    "endedReason",
    "duration",
    "callOutput",
    "providerStatus",
    "sentimentOutput",
    "providerCallId",
)
MAX_TEXT = 200  # characters of a kept text field
MAX_CALL_OUTPUT_BYTES = 2048  # a structured callOutput larger than this is not kept
DELIVERY_STATUSES = ("pass", "fail")
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,39}$")

# Why an event matches no contact (stable: metric labels and `levers-admin` use them).
MALFORMED = "malformed"  # not a JSON object
NO_CORRELATION = "no_correlation"  # no levers_batcher entry in requestMetadata
UNKNOWN_BATCH = "unknown_batch"  # a batch this namespace does not know (or no longer)
SECOND_EVENT = "second_event"  # another call-ended event for a contact that has one
UNMATCHED_REASONS = (MALFORMED, NO_CORRELATION, UNKNOWN_BATCH, SECOND_EVENT)


def read_event(body: bytes, event_id: str, sent_at: float) -> dict[str, Any]:
    """The event as the outcome actor takes it (JSON-safe): `eventId`, `sentAt` (the Svix
    timestamp, about when the call ended), `outcome` (the kept fields), `numberTo`,
    `correlation` ({batch_id, contact_id, ...} or None), `metadata` (the producer's own
    metadata echoed back, for their callbacks), and `problem` (None, or why it is malformed)."""
    event: dict[str, Any] = {
        "eventId": event_id,
        "sentAt": sent_at,
        "outcome": {},
        "numberTo": None,
        "correlation": None,
        "metadata": None,
        "problem": None,
    }
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        event["problem"] = "the body is not JSON"
        return event
    if not isinstance(payload, dict):
        event["problem"] = "the body is not a JSON object"
        return event
    kept = {name: _kept(payload, name) for name in KEPT_FIELDS}
    event["outcome"] = {name: value for name, value in kept.items() if value is not None}
    event["numberTo"] = _text(payload.get("numberTo"), 32)
    metadata = payload.get("metadata")
    request = metadata.get("requestMetadata") if isinstance(metadata, dict) else None
    if isinstance(request, dict):
        correlation = request.get(RESERVED_METADATA_KEY)
        if _is_correlation(correlation):
            event["correlation"] = correlation
        own = {k: v for k, v in request.items() if k != RESERVED_METADATA_KEY}
        event["metadata"] = own or None
    return event


def _kept(payload: Mapping[str, Any], name: str) -> Any:
    value = payload.get(name)
    if name == "duration":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return value if math.isfinite(value) and value >= 0 else None
    if name == "callOutput":
        if isinstance(value, str) or value is None:
            return _text(value, MAX_TEXT)
        if isinstance(value, float) and not math.isfinite(value):
            return None
        # A structured output (an object of the template's fields) is kept if it is small.
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return value if len(encoded.encode()) <= MAX_CALL_OUTPUT_BYTES else None
    return _text(value, MAX_TEXT)


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:limit]


def _is_correlation(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("batch_id"), str)
        and isinstance(value.get("contact_id"), str)
        and 0 < len(value["batch_id"]) <= 64
        and 0 < len(value["contact_id"]) <= 128
    )


def delivery_label(outcome: Mapping[str, Any]) -> str:
    """The `delivery_status` label: pass, fail, or other (absent or anything else)."""
    value = str(outcome.get("deliveryStatus", "")).lower()
    return value if value in DELIVERY_STATUSES else "other"


def label_candidate(value: Any) -> str:
    """A value as a metric label candidate: a short word as it is (lower case), `none` when
    absent, `structured` for an object or list, else `other`. The outcome store then admits
    at most LEVERS_METRICS_MAX_OUTCOME_LABELS distinct words; the rest count as `other`."""
    if value is None or value == "":
        return "none"
    if isinstance(value, dict | list):
        return "structured"
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).strip().lower().replace(" ", "_")
    return text if _LABEL.match(text) else "other"
