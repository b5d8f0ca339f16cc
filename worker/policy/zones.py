"""The recipient's time zones: the producer's `time_zone` when given, else the number's own.

phonenumbers maps a number to the IANA zones of its area: one for most numbers, several for
some (US area codes across a zone line, toll-free numbers, GB mobiles), and `Etc/Unknown` when
it does not know. A window must be open in every zone of a number at once; an unknown zone
is never guessed (the contact is held as `unknown_time_zone`).

Resolving a number costs phonenumbers tens of microseconds, so `recipient_for` keeps the last
65,536 numbers it resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import phonenumbers
from phonenumbers import timezone as phone_timezone

# Checked where contacts are accepted (worker.contacts), re-exported here for the policy.
from worker.contacts import UNKNOWN_ZONE, is_known_zone, time_zone_problem

__all__ = ["UNKNOWN_ZONE", "Recipient", "is_known_zone", "recipient_for", "time_zone_problem"]


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who is called, as far as calling hours care: where the number rings, and in what zones.

    `zones` is empty when they are unknown. `source` says where they came from: the
    producer's `time_zone` ("producer") wins over a template's `time_zone`, which wins over
    the number's own zones ("number").
    """

    zones: tuple[str, ...]
    region: str | None  # ISO 3166 region of the number ("SA", "US"); None if not a country
    source: Literal["producer", "number"] = "number"


_RECIPIENTS: dict[Recipient, Recipient] = {}


@lru_cache(maxsize=65536)
def recipient_for(number: str, time_zone: str | None = None) -> Recipient:
    """The recipient of an E.164 number, with the producer's `time_zone` when one was given."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    return recipient_from_parsed(parsed, time_zone)


def recipient_from_parsed(
    parsed: phonenumbers.PhoneNumber | None, time_zone: str | None = None
) -> Recipient:
    """As `recipient_for`, for a number already parsed (saves phonenumbers' parse)."""
    region = _region(parsed) if parsed is not None else None
    if time_zone is not None:
        # A producer's zone that no longer reads (tzdata changed since it was accepted) is
        # not replaced by a guess: the contact waits as unknown_time_zone.
        zones = (time_zone,) if is_known_zone(time_zone) else ()
        return _shared(Recipient(zones, region, "producer"))
    return _shared(Recipient(zones_for_number(parsed) if parsed is not None else (), region))


def _shared(recipient: Recipient) -> Recipient:
    # Numbers are many and recipients few (one per zone set and region): the cache of
    # numbers holds one shared instance of each instead of a copy per number.
    return _RECIPIENTS.setdefault(recipient, recipient)


def zones_for_number(parsed: phonenumbers.PhoneNumber) -> tuple[str, ...]:
    """The number's zones, sorted; empty when phonenumbers does not know them all."""
    found = phone_timezone.time_zones_for_number(parsed)
    # One zone this machine cannot read makes them all unknown: a subset would be a guess.
    if not found or not all(is_known_zone(z) for z in found):
        return ()
    return tuple(sorted(found))


def _region(parsed: phonenumbers.PhoneNumber) -> str | None:
    region = phonenumbers.region_code_for_number(parsed)
    # "001" marks non-geographic numbers (international freephone and the like).
    return region if region and region.isalpha() else None
