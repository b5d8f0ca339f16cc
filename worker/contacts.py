"""The contact model: validation, normalisation to E.164, and its two wire forms.

A producer hands us loose fields; `validate_contact` either returns a `Contact` whose number is
E.164 and whose fields are exactly what Levers documents, or raises `ContactError` with a stable
reason code. The same function runs in the producer (fail before enqueueing) and in the
aggregate actor (messages can come from anywhere that speaks dramatiq).
"""

from __future__ import annotations

import functools
import json
import math
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as phone_timezone

from worker.e164 import check_plus_digits
from worker.errors import ContactError

MAX_NAME_LENGTH = 100
MAX_METADATA_BYTES = 4096
MAX_RAW_NUMBER_LENGTH = 64
DEFAULT_TEMPLATE = "default"
# The worker adds {"batch_id", "contact_id"} under this metadata key of every contact sent.
RESERVED_METADATA_KEY = "levers_batcher"

# Stable reason codes: metrics labels, `levers-admin status` and rejection records use them.
UNPARSEABLE_NUMBER = "unparseable_number"
INVALID_NUMBER = "invalid_number"
INVALID_NAME = "invalid_name"
INVALID_METADATA = "invalid_metadata"
INVALID_PROMPT_TAGS = "invalid_prompt_tags"
INVALID_TEMPLATE_ID = "invalid_template_id"
INVALID_FIELD = "invalid_field"
INVALID_TIME_ZONE = "invalid_time_zone"
INVALID_SCHEDULE = "invalid_schedule"
NUMBER_TYPE_NOT_ALLOWED = "number_type_not_allowed"
SUPPRESSED = "suppressed"  # on the do-not-call list
REJECT_REASONS = (
    SUPPRESSED,
    UNPARSEABLE_NUMBER,
    INVALID_NUMBER,
    NUMBER_TYPE_NOT_ALLOWED,
    INVALID_NAME,
    INVALID_METADATA,
    INVALID_PROMPT_TAGS,
    INVALID_TEMPLATE_ID,
    INVALID_TIME_ZONE,
    INVALID_SCHEDULE,
    INVALID_FIELD,
)

# phonenumbers' number types by the names LEVERS_ALLOWED_NUMBER_TYPES uses.
NUMBER_TYPES = {
    "mobile": PhoneNumberType.MOBILE,
    "fixed_line": PhoneNumberType.FIXED_LINE,
    "fixed_line_or_mobile": PhoneNumberType.FIXED_LINE_OR_MOBILE,
    "toll_free": PhoneNumberType.TOLL_FREE,
    "premium_rate": PhoneNumberType.PREMIUM_RATE,
    "shared_cost": PhoneNumberType.SHARED_COST,
    "voip": PhoneNumberType.VOIP,
    "personal_number": PhoneNumberType.PERSONAL_NUMBER,
    "pager": PhoneNumberType.PAGER,
    "uan": PhoneNumberType.UAN,
    "voicemail": PhoneNumberType.VOICEMAIL,
}
_TYPE_NAMES = {value: name for name, value in NUMBER_TYPES.items()}
# Numbers a person answers: what may be called unless an operator says otherwise.
PERSONAL_NUMBER_TYPES = frozenset({"mobile", "fixed_line", "fixed_line_or_mobile"})

# The fields a contact message may carry (snake_case, as the Python API names them).
MESSAGE_FIELDS = frozenset(
    {
        "number",
        "first_name",
        "last_name",
        "metadata",
        "prompt_tags",
        "template_id",
        "update_existing",
        "region",
        "dedupe_key",
        "time_zone",
        "not_before",
        "expire_at",
    }
)
UNKNOWN_ZONE = phone_timezone.UNKNOWN_TIMEZONE  # "Etc/Unknown"


@dataclass(frozen=True)
class ContactRules:
    """What the deployment accepts beyond the fixed rules (from settings)."""

    default_region: str | None = None  # for numbers not in +E.164 form
    number_types: frozenset[str] = PERSONAL_NUMBER_TYPES


@dataclass(frozen=True)
class Contact:
    number: str  # E.164
    first_name: str | None = None
    last_name: str | None = None
    metadata: Mapping[str, Any] | None = None
    prompt_tags: Mapping[str, str] | None = None
    template_id: str | None = None  # canonical lower-case UUID, None for the account default
    update_existing: bool = False
    dedupe_key: str | None = None
    time_zone: str | None = None  # IANA name given by the producer: wins over the number's
    not_before: float | None = None  # POSIX seconds: not called before
    expire_at: float | None = None  # POSIX seconds: never called from then on

    @property
    def batch_key(self) -> str:
        """Contacts may share a request only when both request-level fields agree."""
        return batch_key(self.template_id, self.update_existing)

    def to_message(self) -> dict[str, Any]:
        """The dramatiq message payload (validated again on the worker side)."""
        payload: dict[str, Any] = {"number": self.number}
        for name in (
            "first_name",
            "last_name",
            "template_id",
            "dedupe_key",
            "time_zone",
            "not_before",
            "expire_at",
        ):
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        if self.metadata is not None:
            payload["metadata"] = dict(self.metadata)
        if self.prompt_tags is not None:
            payload["prompt_tags"] = dict(self.prompt_tags)
        if self.update_existing:
            payload["update_existing"] = True
        return payload

    def to_levers(self) -> dict[str, Any]:
        """One entry of the bulk request's `contacts`, with Levers' field names only."""
        entry: dict[str, Any] = {"numberToCall": self.number}
        if self.first_name is not None:
            entry["firstName"] = self.first_name
        if self.last_name is not None:
            entry["lastName"] = self.last_name
        if self.metadata is not None:
            entry["metadata"] = dict(self.metadata)
        if self.prompt_tags is not None:
            entry["promptTags"] = dict(self.prompt_tags)
        return entry


def batch_key(template_id: str | None, update_existing: bool) -> str:
    return f"{template_id or DEFAULT_TEMPLATE}:{int(update_existing)}"


def parse_batch_key(key: str) -> tuple[str | None, bool]:
    """Inverse of `batch_key`: (template id or None for the default, updateExisting)."""
    template, _, flag = key.rpartition(":")
    return (None if template == DEFAULT_TEMPLATE else template), flag == "1"


def mask_number(number: str) -> str:
    """`+966501234567` -> `+96650*****67`: enough to tell numbers apart in logs, not to dial.

    Short numbers keep a shorter prefix, so at least three digits are always hidden.
    """
    if len(number) <= 5:
        return "*" * len(number)
    prefix = min(6, len(number) - 5)
    return number[:prefix] + "*" * (len(number) - prefix - 2) + number[-2:]


def normalise_number(
    raw: object, region: str | None = None, number_types: frozenset[str] | None = None
) -> str:
    """Return the E.164 form of `raw`, parsing national formats in `region` when given.

    A number with an extension is refused (a call cannot dial it, and dropping it would call
    a switchboard instead of the person); with `number_types`, so is a number of any other
    type (premium rate, toll free, ...).
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ContactError(UNPARSEABLE_NUMBER, "the phone number must be a non-empty string")
    text = raw.strip()
    if len(text) > MAX_RAW_NUMBER_LENGTH:
        raise ContactError(UNPARSEABLE_NUMBER, "the phone number is too long to be one")
    region = region.upper() if region else None
    if not text.startswith("+") and region is None:
        raise ContactError(
            UNPARSEABLE_NUMBER,
            "the phone number is not in +E.164 form and no region was given "
            "(pass region= or set LEVERS_DEFAULT_REGION)",
        )
    fast = check_plus_digits(text)  # most numbers in a file: same verdict, a third the cost
    if fast is not None:
        if not fast[0]:
            raise ContactError(INVALID_NUMBER, "the phone number is not a valid number")
        return fast[1]
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise ContactError(UNPARSEABLE_NUMBER, f"the phone number cannot be parsed: {exc}") from exc
    if parsed.extension:
        raise ContactError(
            INVALID_NUMBER, "the phone number has an extension; extensions cannot be dialled"
        )
    if not phonenumbers.is_valid_number(parsed):
        raise ContactError(INVALID_NUMBER, "the phone number is not a valid number")
    if number_types is not None:
        kind = _TYPE_NAMES.get(phonenumbers.number_type(parsed), "unknown")
        if kind not in number_types:
            raise ContactError(
                NUMBER_TYPE_NOT_ALLOWED,
                f"{kind} numbers are not called here (LEVERS_ALLOWED_NUMBER_TYPES: "
                f"{', '.join(sorted(number_types))})",
            )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def validate_contact(fields: Mapping[str, Any], rules: ContactRules = ContactRules()) -> Contact:
    """Check and normalise one contact given in the Python API's field names."""
    unknown = set(fields) - MESSAGE_FIELDS
    if unknown:
        raise ContactError(INVALID_FIELD, f"unknown contact fields: {', '.join(sorted(unknown))}")
    region = fields.get("region")
    if region is not None and (
        not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS
    ):
        raise ContactError(UNPARSEABLE_NUMBER, "region must be a region code such as SA or US")
    number = normalise_number(
        fields.get("number"),
        region.upper() if region else rules.default_region,
        rules.number_types,
    )
    update_existing = fields.get("update_existing", False)
    if not isinstance(update_existing, bool):
        raise ContactError(INVALID_FIELD, "update_existing must be true or false")
    dedupe_key = fields.get("dedupe_key")
    if dedupe_key is not None and (
        not isinstance(dedupe_key, str) or not 0 < len(dedupe_key) <= 200
    ):
        raise ContactError(INVALID_FIELD, "dedupe_key must be a string of 1 to 200 characters")
    time_zone = fields.get("time_zone")
    if time_zone is not None and (problem := time_zone_problem(time_zone)):
        raise ContactError(INVALID_TIME_ZONE, problem)
    not_before = instant(fields.get("not_before"), "not_before")
    expire_at = instant(fields.get("expire_at"), "expire_at")
    if not_before is not None and expire_at is not None and expire_at <= not_before:
        raise ContactError(INVALID_SCHEDULE, "expire_at must be later than not_before")
    return Contact(
        number=number,
        first_name=_name(fields.get("first_name"), "first_name"),
        last_name=_name(fields.get("last_name"), "last_name"),
        metadata=_metadata(fields.get("metadata")),
        prompt_tags=_prompt_tags(fields.get("prompt_tags")),
        template_id=_template_id(fields.get("template_id")),
        update_existing=update_existing,
        dedupe_key=dedupe_key,
        time_zone=time_zone,
        not_before=not_before,
        expire_at=expire_at,
    )


def time_zone_problem(name: object) -> str | None:
    """Why `name` is not an IANA time zone name this machine knows, or None."""
    if not isinstance(name, str) or not name.strip():
        return "time_zone must be an IANA time zone name such as Asia/Riyadh"
    if not is_known_zone(name):
        return f"time_zone {name!r} is not an IANA time zone name (e.g. Asia/Riyadh)"
    return None


@lru_cache(maxsize=1024)
def is_known_zone(name: str) -> bool:
    if name == UNKNOWN_ZONE:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not a key ("../x", "/etc/x")
        return False
    return True


def instant(value: object, field: str) -> float | None:
    """POSIX seconds from epoch seconds (a number), an aware datetime, or ISO 8601 text with an
    offset.

    A time without an offset is refused: whose 09:00 it meant cannot be known.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ContactError(INVALID_SCHEDULE, f"{field} must be a time, not true/false")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ContactError(INVALID_SCHEDULE, f"{field} is a naive datetime: give it a tzinfo")
        seconds = value.timestamp()
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ContactError(
                INVALID_SCHEDULE,
                f"{field} must be ISO 8601 with an offset (2026-12-03T09:00:00+03:00) or epoch "
                "seconds",
            ) from exc
        if parsed.tzinfo is None:
            raise ContactError(
                INVALID_SCHEDULE,
                f"{field} has no offset: say whose time it is (e.g. +03:00 or Z)",
            )
        seconds = parsed.timestamp()
    else:
        raise ContactError(INVALID_SCHEDULE, f"{field} must be a time")
    if not math.isfinite(seconds) or not 0 <= seconds < 2**33:
        raise ContactError(INVALID_SCHEDULE, f"{field} is not a time this century")
    return seconds


# Control characters, surrogates, and line and paragraph separators.
_CONTROL = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _name(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContactError(INVALID_NAME, f"{field} must be a string")
    if any(unicodedata.category(ch) in _CONTROL for ch in value):
        # A NUL or a newline would reach Levers' prompt (or break a log line) as it is.
        raise ContactError(INVALID_NAME, f"{field} holds control characters")
    value = value.strip()
    if len(value) > MAX_NAME_LENGTH:
        raise ContactError(INVALID_NAME, f"{field} is over {MAX_NAME_LENGTH} characters")
    return value or None


def _metadata(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ContactError(INVALID_METADATA, "metadata must be a JSON object")
    if RESERVED_METADATA_KEY in value:
        raise ContactError(
            INVALID_METADATA, f"metadata key {RESERVED_METADATA_KEY!r} is reserved for correlation"
        )
    if _surely_fits(value):
        return value
    try:
        # allow_nan=False: NaN and Infinity are not JSON, and the request body must be.
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        size = len(encoded.encode())
    except (TypeError, ValueError) as exc:
        raise ContactError(INVALID_METADATA, f"metadata is not JSON-serialisable: {exc}") from exc
    if size > MAX_METADATA_BYTES:
        raise ContactError(
            INVALID_METADATA, f"metadata is {size} bytes serialised, over {MAX_METADATA_BYTES}"
        )
    return value


def _surely_fits(value: dict[Any, Any]) -> bool:
    """True when `value` is ASCII text keys and values whose JSON must fit MAX_METADATA_BYTES
    (at most 6 bytes a character, escaped): the common case, without serialising it."""
    total = 2
    for key, item in value.items():
        if type(key) is not str or type(item) is not str or not (key.isascii() and item.isascii()):
            return False
        total += 6 * (len(key) + len(item)) + 6
    return total <= MAX_METADATA_BYTES


def _prompt_tags(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ContactError(INVALID_PROMPT_TAGS, "prompt_tags must be an object of strings")
    for key, tag in value.items():
        if not isinstance(key, str) or not isinstance(tag, str):
            raise ContactError(
                INVALID_PROMPT_TAGS,
                f"prompt_tags[{key!r}] must be a string (Levers takes strings only)",
            )
    return value


def _template_id(value: object) -> str | None:
    if value is None or value == DEFAULT_TEMPLATE:
        return None
    if not isinstance(value, str):
        raise ContactError(INVALID_TEMPLATE_ID, "template_id must be a UUID string")
    canonical = _canonical_uuid(value)
    if canonical is None:
        raise ContactError(INVALID_TEMPLATE_ID, f"template_id {value!r} is not a UUID")
    return canonical


@functools.lru_cache(maxsize=1024)
def _canonical_uuid(value: str) -> str | None:
    # A file or a campaign names a handful of templates, thousands of times each.
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
