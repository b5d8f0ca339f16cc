"""The `+digits` fast path gives phonenumbers' own verdict, or steps aside."""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import PhoneNumberType

from worker.e164 import check_plus_digits, parse_and_check

TYPES = [
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.VOIP,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.UAN,
    PhoneNumberType.PAGER,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.VOICEMAIL,
]


def candidates() -> list[str]:
    texts: list[str] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        code = phonenumbers.country_code_for_region(region)
        for kind in TYPES:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            nsn = phonenumbers.national_significant_number(example)
            texts += [f"+{code}{nsn}", f"+{code}0{nsn}", f"+{code}{nsn[:-1]}", f"+{code}{nsn}9"]
            prefix = phonenumbers.ndd_prefix_for_region(region, True)
            if prefix:
                texts.append(f"+{code}{prefix}{nsn}")
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            texts.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    rng = random.Random(7)
    texts += [f"+{rng.randrange(10**6, 10**17)}" for _ in range(30_000)]
    texts += [f"+9665{rng.randrange(10**8):08d}" for _ in range(5_000)]
    return texts


def test_same_verdict_as_phonenumbers_wherever_it_answers() -> None:
    answered = valid = 0
    for text in candidates():
        fast = check_plus_digits(text)
        if fast is None:
            continue
        answered += 1
        valid += fast[0]
        assert fast == parse_and_check(text), text
    assert answered > 20_000 and valid > 2_000  # it answers for most, valid or not


def test_it_steps_aside_for_anything_but_plus_and_digits() -> None:
    for text in ("966501234567", "+966 50 123 4567", "+٩٦٦٥٠١٢٣٤٥٦٧", "+0966501234567", "+1"):
        assert check_plus_digits(text) is None, text
    assert check_plus_digits("+14155552671") is None  # +1 is shared by many regions
