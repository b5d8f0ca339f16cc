"""A fast path through phonenumbers for numbers already written as `+` and digits.

`phonenumbers.parse` is general (letters, punctuation, extensions, RFC 3966, national formats)
and with `is_valid_number` and `format_number` costs ~25 µs a number: most of an import's CPU.
For a string that is `+` and 7 to 17 ASCII digits, parse does exactly this: take the country
code (the first 1-3 digits that name one), strip a national prefix only when the region's
`national_prefix_for_parsing` matches at the start, and mark Italian leading zeros. When nothing
is stripped, the E.164 form is the input itself, and validity is phonenumbers' own test (the
general pattern, then any number type's pattern, with its own `_is_number_matching_desc`).

`check_plus_digits` does that with phonenumbers' own tables, cached per country code, and gives
up (None: the caller asks phonenumbers) wherever phonenumbers would do more: no country code,
a national prefix that might be stripped, a length parse refuses, a country code shared by
several regions (+1, +7, +44, ...), whose region is found by trying each. tests/test_e164.py
checks it against phonenumbers for every region's example numbers and random digit strings.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from phonenumbers.phonenumberutil import _is_number_matching_desc as matches

_PLUS_DIGITS = re.compile(r"\+([0-9]{7,17})")
_MIN_NSN, _MAX_NSN = 2, 17  # phonenumbers' _MIN_LENGTH_FOR_NSN, _MAX_LENGTH_FOR_NSN
_TYPES = (
    "fixed_line",
    "mobile",
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


class _Country:
    """What the fast path needs of one country code's metadata."""

    def __init__(self, metadata: Any) -> None:
        prefix = metadata.national_prefix_for_parsing
        self.prefix = re.compile(prefix) if prefix else None
        self.general = metadata.general_desc
        self.types = [getattr(metadata, name) for name in _TYPES]


_countries: dict[int, _Country | None] = {}


def _country(code: int) -> _Country | None:
    if code not in _countries:
        regions = COUNTRY_CODE_TO_REGION_CODE[code]
        metadata = (
            PhoneMetadata.metadata_for_region_or_calling_code(code, regions[0])
            if len(regions) == 1
            else None
        )
        _countries[code] = _Country(metadata) if metadata is not None else None
    return _countries[code]


def check_plus_digits(text: str) -> tuple[bool, str] | None:
    """(valid, E.164 form) as phonenumbers would say for `text`, or None when only phonenumbers
    can say."""
    match = _PLUS_DIGITS.fullmatch(text)
    if match is None:
        return None
    digits = match.group(1)
    if digits[0] == "0":
        return None
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return None
    national = digits[length:]
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return None
    country = _country(code)
    if country is None or (country.prefix is not None and country.prefix.match(national)):
        return None  # several regions, or a national prefix parse might strip
    valid = matches(national, country.general) and any(
        matches(national, desc) for desc in country.types
    )
    return bool(valid), text


def parse_and_check(text: str) -> tuple[bool, str]:
    """The slow path, for comparison: phonenumbers' own verdict."""
    number = phonenumbers.parse(text, None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.is_valid_number(number), e164
