"""The contact model: phone normalisation, field validation and the two wire forms."""

from __future__ import annotations

import datetime
import json
from typing import Any

import httpx
import phonenumbers
import pytest

from worker.contacts import (
    INVALID_FIELD,
    INVALID_METADATA,
    INVALID_NAME,
    INVALID_NUMBER,
    INVALID_PROMPT_TAGS,
    INVALID_TEMPLATE_ID,
    MAX_METADATA_BYTES,
    NUMBER_TYPE_NOT_ALLOWED,
    NUMBER_TYPES,
    UNPARSEABLE_NUMBER,
    Contact,
    ContactRules,
    batch_key,
    mask_number,
    normalise_number,
    parse_batch_key,
    validate_contact,
)
from worker.errors import ContactError

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
SARA = "+966501234567"

# (raw, region, E.164)
VALID_NUMBERS = [
    pytest.param(SARA, None, SARA, id="sa-mobile"),
    pytest.param("+966112345678", None, "+966112345678", id="sa-landline-riyadh"),
    pytest.param("+14155552671", None, "+14155552671", id="us"),
    pytest.param("+442071838750", None, "+442071838750", id="uk-landline"),
    pytest.param("+447911123456", None, "+447911123456", id="uk-mobile"),
    pytest.param("+966 50 123 4567", None, SARA, id="e164-with-spaces"),
    pytest.param(f"  {SARA}\n", None, SARA, id="surrounding-whitespace"),
    # A +E.164 number ignores the region: it names its own country.
    pytest.param(SARA, "US", SARA, id="e164-ignores-region"),
    pytest.param("0501234567", "SA", SARA, id="sa-national"),
    pytest.param("(415) 555-2671", "US", "+14155552671", id="us-national"),
    pytest.param("020 7183 8750", "GB", "+442071838750", id="gb-national"),
]

NATIONAL = [
    pytest.param("0501234567", "SA", SARA, id="sa"),
    pytest.param("(415) 555-2671", "US", "+14155552671", id="us"),
    pytest.param("020 7183 8750", "GB", "+442071838750", id="gb"),
]

# (raw, region, reason)
BAD_NUMBERS = [
    pytest.param("abc", None, UNPARSEABLE_NUMBER, id="letters"),
    pytest.param("abc", "SA", UNPARSEABLE_NUMBER, id="letters-with-region"),
    pytest.param("+abc", None, UNPARSEABLE_NUMBER, id="plus-letters"),
    pytest.param("", None, UNPARSEABLE_NUMBER, id="empty"),
    pytest.param("   ", "SA", UNPARSEABLE_NUMBER, id="blank"),
    pytest.param(None, None, UNPARSEABLE_NUMBER, id="none"),
    pytest.param(None, "SA", UNPARSEABLE_NUMBER, id="none-with-region"),
    pytest.param(12345, None, UNPARSEABLE_NUMBER, id="int"),
    pytest.param(966501234567, "SA", UNPARSEABLE_NUMBER, id="int-with-region"),
    pytest.param("+" + "9" * 99, None, UNPARSEABLE_NUMBER, id="100-chars"),
    pytest.param("0501234567", None, UNPARSEABLE_NUMBER, id="national-without-region"),
    pytest.param("(415) 555-2671", None, UNPARSEABLE_NUMBER, id="us-national-without-region"),
    # The documentation's example is one digit short of a Saudi number.
    pytest.param("+96612341234", None, INVALID_NUMBER, id="docs-example-too-short"),
    pytest.param("+96650123456", None, INVALID_NUMBER, id="sa-mobile-too-short"),
    pytest.param("+9665012345678", None, INVALID_NUMBER, id="sa-mobile-too-long"),
    pytest.param("+15555555555", None, INVALID_NUMBER, id="us-555-area-code"),
    pytest.param("+4420", None, INVALID_NUMBER, id="uk-too-short"),
    pytest.param("0501234567", "US", INVALID_NUMBER, id="sa-national-read-as-us"),
]


def error_of(fields: dict[str, Any], default_region: str | None = None) -> ContactError:
    rules = ContactRules(default_region=default_region)
    with pytest.raises(ContactError) as caught:
        validate_contact(fields, rules)
    return caught.value


# --- phone numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "region", "expected"), VALID_NUMBERS)
def test_normalise_number_valid(raw: str, region: str | None, expected: str) -> None:
    assert normalise_number(raw, region) == expected


@pytest.mark.parametrize(("raw", "region", "expected"), VALID_NUMBERS)
def test_validate_contact_with_per_contact_region(
    raw: str, region: str | None, expected: str
) -> None:
    fields: dict[str, Any] = {"number": raw}
    if region is not None:
        fields["region"] = region
    assert validate_contact(fields).number == expected


@pytest.mark.parametrize(("raw", "region", "expected"), NATIONAL)
def test_validate_contact_with_default_region(raw: str, region: str, expected: str) -> None:
    assert validate_contact({"number": raw}, ContactRules(default_region=region)).number == expected


@pytest.mark.parametrize(("raw", "region", "expected"), NATIONAL)
def test_per_contact_region_may_be_lower_case(raw: str, region: str, expected: str) -> None:
    assert validate_contact({"number": raw, "region": region.lower()}).number == expected


def test_per_contact_region_wins_over_default_region() -> None:
    contact = validate_contact(
        {"number": "020 7183 8750", "region": "GB"}, ContactRules(default_region="SA")
    )
    assert contact.number == "+442071838750"


@pytest.mark.parametrize(("raw", "region", "expected"), NATIONAL)
def test_national_number_without_any_region_is_unparseable(
    raw: str, region: str, expected: str
) -> None:
    assert error_of({"number": raw}).reason == UNPARSEABLE_NUMBER


@pytest.mark.parametrize(("raw", "region", "reason"), BAD_NUMBERS)
def test_normalise_number_rejects(raw: object, region: str | None, reason: str) -> None:
    with pytest.raises(ContactError) as caught:
        normalise_number(raw, region)
    assert caught.value.reason == reason


@pytest.mark.parametrize(("raw", "region", "reason"), BAD_NUMBERS)
def test_validate_contact_rejects_number(raw: object, region: str | None, reason: str) -> None:
    assert error_of({"number": raw, "region": region}).reason == reason


@pytest.mark.parametrize(("raw", "region", "reason"), BAD_NUMBERS)
def test_validate_contact_rejects_number_with_default_region(
    raw: object, region: str | None, reason: str
) -> None:
    assert error_of({"number": raw}, default_region=region).reason == reason


def test_missing_number_is_unparseable() -> None:
    assert error_of({"first_name": "Sara"}).reason == UNPARSEABLE_NUMBER


@pytest.mark.parametrize("region", ["ZZ", "Saudi", "", 966])
def test_unknown_per_contact_region_is_rejected(region: object) -> None:
    assert error_of({"number": "0501234567", "region": region}).reason == UNPARSEABLE_NUMBER


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["first_name", "last_name"])
@pytest.mark.parametrize("value", [123, ["Sara"], {"name": "Sara"}, "a" * 101])
def test_bad_names_are_rejected(field: str, value: object) -> None:
    assert error_of({"number": SARA, field: value}).reason == INVALID_NAME


def test_names_are_stripped_and_blank_names_are_absent() -> None:
    contact = validate_contact({"number": SARA, "first_name": "  Sara ", "last_name": "   "})
    assert contact.first_name == "Sara"
    assert contact.last_name is None


def test_a_name_of_exactly_100_characters_is_accepted() -> None:
    assert validate_contact({"number": SARA, "first_name": "a" * 100}).first_name == "a" * 100


# --- metadata ------------------------------------------------------------------------------


def metadata_of_size(size: int) -> dict[str, str]:
    """An object whose compact JSON form is `size` bytes: {"k":"aaa…"} has 8 bytes of frame."""
    return {"k": "a" * (size - 8)}


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(["crm_id", "42"], id="list"),
        pytest.param("crm_id=42", id="string"),
        pytest.param(42, id="int"),
        pytest.param({"when": datetime.date(2024, 1, 1)}, id="date-value"),
        pytest.param({"ids": {1, 2}}, id="set-value"),
        pytest.param({("a", "b"): "tuple key"}, id="tuple-key"),
        pytest.param(metadata_of_size(MAX_METADATA_BYTES + 1), id="over-4KiB"),
        # 2100 Arabic letters are 4200 bytes of UTF-8: the limit is on bytes, not characters.
        pytest.param({"n": "\u0633" * 2100}, id="over-4KiB-in-utf8"),
        pytest.param({"levers_batcher": {"batch_id": "x"}}, id="reserved-key"),
        pytest.param({"crm_id": "42", "levers_batcher": None}, id="reserved-key-null"),
        # Levers and httpx take strict JSON only; NaN and Infinity are not JSON.
        pytest.param({"score": float("nan")}, id="nan"),
        pytest.param({"score": float("inf")}, id="infinity"),
    ],
)
def test_bad_metadata_is_rejected(metadata: object) -> None:
    assert error_of({"number": SARA, "metadata": metadata}).reason == INVALID_METADATA


def test_metadata_of_exactly_4_KiB_is_accepted() -> None:
    metadata = metadata_of_size(MAX_METADATA_BYTES)
    assert len(json.dumps(metadata, separators=(",", ":")).encode()) == MAX_METADATA_BYTES
    assert validate_contact({"number": SARA, "metadata": metadata}).metadata == metadata


@pytest.mark.parametrize("score", [0.5, float("nan"), float("inf"), float("-inf")])
def test_metadata_validation_accepts_only_what_httpx_can_send(score: float) -> None:
    """The bulk request is encoded as strict JSON (allow_nan=False) when it is finally sent."""
    try:
        contact = validate_contact({"number": SARA, "metadata": {"score": score}})
    except ContactError as exc:
        assert exc.reason == INVALID_METADATA
        return
    httpx.Request("POST", "https://levers.test/bulk", json={"contacts": [contact.to_levers()]})


# --- prompt tags ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt_tags",
    [
        pytest.param({"amount": 120}, id="int-value"),
        pytest.param({"amount": None}, id="null-value"),
        pytest.param({"amount": ["120"]}, id="list-value"),
        pytest.param({"amount": "120", "paid": True}, id="bool-value"),
        pytest.param({1: "120"}, id="int-key"),
        pytest.param(["amount", "120"], id="list"),
        pytest.param("amount=120", id="string"),
    ],
)
def test_bad_prompt_tags_are_rejected(prompt_tags: object) -> None:
    assert error_of({"number": SARA, "prompt_tags": prompt_tags}).reason == INVALID_PROMPT_TAGS


def test_string_prompt_tags_are_accepted() -> None:
    tags = {"amount": "120", "due": "2024-07-01"}
    assert validate_contact({"number": SARA, "prompt_tags": tags}).prompt_tags == tags


# --- template id ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template_id", ["not-a-uuid", "0b6f3f4e-6a43-4a5e-9e59", "", "DEFAULT", 42, ["x"]]
)
def test_bad_template_id_is_rejected(template_id: object) -> None:
    assert error_of({"number": SARA, "template_id": template_id}).reason == INVALID_TEMPLATE_ID


@pytest.mark.parametrize(
    ("template_id", "expected"),
    [
        pytest.param(TEMPLATE, TEMPLATE, id="lower"),
        pytest.param(TEMPLATE.upper(), TEMPLATE, id="upper-is-lowered"),
        pytest.param("default", None, id="default-is-none"),
        pytest.param(None, None, id="none"),
    ],
)
def test_template_id_is_normalised(template_id: str | None, expected: str | None) -> None:
    assert validate_contact({"number": SARA, "template_id": template_id}).template_id == expected


def test_upper_and_lower_case_template_ids_share_a_batch_key() -> None:
    upper = validate_contact({"number": SARA, "template_id": TEMPLATE.upper()})
    lower = validate_contact({"number": SARA, "template_id": TEMPLATE})
    assert upper.batch_key == lower.batch_key == f"{TEMPLATE}:0"


# --- other fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"number": SARA, "email": "sara@example.com"}, id="unknown"),
        # validate_contact takes the Python API's names; Levers' are for the importer to map.
        pytest.param({"numberToCall": SARA}, id="levers-name"),
        pytest.param({"number": SARA, "firstName": "Sara"}, id="levers-first-name"),
    ],
)
def test_unknown_fields_are_rejected(fields: dict[str, Any]) -> None:
    error = error_of(fields)
    assert error.reason == INVALID_FIELD
    assert next(name for name in fields if name != "number") in str(error)


@pytest.mark.parametrize("value", ["true", "false", 1, 0, None])
def test_update_existing_must_be_a_bool(value: object) -> None:
    assert error_of({"number": SARA, "update_existing": value}).reason == INVALID_FIELD


@pytest.mark.parametrize("value", [True, False])
def test_update_existing_bool_is_kept(value: bool) -> None:
    assert validate_contact({"number": SARA, "update_existing": value}).update_existing is value


def test_update_existing_defaults_to_false() -> None:
    assert validate_contact({"number": SARA}).update_existing is False


@pytest.mark.parametrize("value", ["", "k" * 201, 42])
def test_bad_dedupe_key_is_rejected(value: object) -> None:
    assert error_of({"number": SARA, "dedupe_key": value}).reason == INVALID_FIELD


# --- wire forms ----------------------------------------------------------------------------

FULL = Contact(
    number=SARA,
    first_name="Sara",
    last_name="Al-Qahtani",
    metadata={"crm_id": "42", "nested": {"a": [1, 2]}},
    prompt_tags={"amount": "120"},
    template_id=TEMPLATE,
    update_existing=True,
    dedupe_key="invoice-7",
)
MINIMAL = Contact(number="+14155552671")


def test_to_levers_uses_levers_field_names_only() -> None:
    assert FULL.to_levers() == {
        "numberToCall": SARA,
        "firstName": "Sara",
        "lastName": "Al-Qahtani",
        "metadata": {"crm_id": "42", "nested": {"a": [1, 2]}},
        "promptTags": {"amount": "120"},
    }


def test_to_levers_omits_absent_fields() -> None:
    assert MINIMAL.to_levers() == {"numberToCall": "+14155552671"}


def test_to_levers_keeps_empty_but_present_objects() -> None:
    contact = Contact(number=SARA, metadata={}, prompt_tags={})
    assert contact.to_levers() == {"numberToCall": SARA, "metadata": {}, "promptTags": {}}


@pytest.mark.parametrize(
    "contact",
    [
        pytest.param(FULL, id="full"),
        pytest.param(MINIMAL, id="minimal"),
        pytest.param(Contact(number=SARA, update_existing=True), id="update-existing"),
        pytest.param(Contact(number=SARA, last_name="Ali"), id="last-name-only"),
    ],
)
def test_to_message_round_trips_through_validate_contact(contact: Contact) -> None:
    assert validate_contact(contact.to_message()) == contact
    # dramatiq carries the message as JSON.
    assert validate_contact(json.loads(json.dumps(contact.to_message()))) == contact


def test_to_message_from_national_input_needs_no_region() -> None:
    contact = validate_contact({"number": "0501234567", "region": "SA"})
    message = contact.to_message()
    assert message == {"number": SARA}
    assert validate_contact(message) == contact


@pytest.mark.parametrize(
    ("template_id", "update_existing", "key"),
    [
        (None, False, "default:0"),
        (None, True, "default:1"),
        (TEMPLATE, False, f"{TEMPLATE}:0"),
        (TEMPLATE, True, f"{TEMPLATE}:1"),
    ],
)
def test_batch_key_round_trip(template_id: str | None, update_existing: bool, key: str) -> None:
    assert batch_key(template_id, update_existing) == key
    assert parse_batch_key(key) == (template_id, update_existing)
    contact = Contact(number=SARA, template_id=template_id, update_existing=update_existing)
    assert contact.batch_key == key


def test_contacts_differing_in_a_request_level_field_never_share_a_key() -> None:
    keys = {
        Contact(number=SARA).batch_key,
        Contact(number=SARA, update_existing=True).batch_key,
        Contact(number=SARA, template_id=TEMPLATE).batch_key,
        Contact(number=SARA, template_id=TEMPLATE, update_existing=True).batch_key,
    }
    assert len(keys) == 4


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        (SARA, "+96650*****67"),
        ("+14155552671", "+14155****71"),
        ("+123456", "+1***56"),
        ("+6834002", "+68***02"),
        ("+1234", "*****"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked
    assert len(mask_number(number)) == len(number)


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("+6834002", id="niue-8-chars"),
        pytest.param("+29022001", id="saint-helena-9-chars"),
        pytest.param("+50051234", id="falklands-9-chars"),
        pytest.param(SARA, id="sa"),
    ],
)
def test_mask_number_hides_digits_of_every_valid_number(number: str) -> None:
    """Masked numbers go to logs: even the shortest valid E.164 number must not come out whole."""
    assert normalise_number(number) == number
    assert "*" in mask_number(number)


# --- input hygiene -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Sa\x00ra", "Sara\nSmith", "Sara\r", "Sa\u2028ra", "\x1b[31mSara"]
)
def test_names_with_control_characters_are_rejected(name: str) -> None:
    assert error_of({"number": SARA, "first_name": name}).reason == INVALID_NAME
    assert error_of({"number": SARA, "last_name": name}).reason == INVALID_NAME


def test_a_number_with_an_extension_is_rejected_not_shortened() -> None:
    error = error_of({"number": "+1 212 555 0123 x55"})
    assert error.reason == INVALID_NUMBER
    assert "extensions cannot be dialled" in str(error)
    assert error_of({"number": "+1 212-555-0123 ext. 55"}).reason == INVALID_NUMBER


def example(region: str, kind: str) -> str:
    number = phonenumbers.example_number_for_type(region, NUMBER_TYPES[kind])
    assert number is not None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@pytest.mark.parametrize(
    ("region", "kind"),
    [("GB", "premium_rate"), ("US", "toll_free"), ("GB", "voip"), ("GB", "personal_number")],
)
def test_non_personal_number_types_are_refused_by_default(region: str, kind: str) -> None:
    number = example(region, kind)
    error = error_of({"number": number})
    assert error.reason == NUMBER_TYPE_NOT_ALLOWED and kind in str(error)
    allowed = ContactRules(number_types=frozenset({kind}))
    assert validate_contact({"number": number}, allowed).number == number


@pytest.mark.parametrize(
    ("region", "kind"), [("SA", "mobile"), ("SA", "fixed_line"), ("US", "fixed_line_or_mobile")]
)
def test_personal_number_types_are_called_by_default(region: str, kind: str) -> None:
    number = example(region, kind)
    assert validate_contact({"number": number}).number == number
