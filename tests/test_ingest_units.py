"""levers-ingest's pure parts: the stored answer, the body parser, the field mapping, tokens."""

from __future__ import annotations

import json

import pytest

from producers.api import EnqueueResult, Rejection
from producers.ingest.contacts import Invalid, parse_contacts
from producers.ingest.idempotency import Outcomes, fingerprint
from producers.ingest.models import ContactIn, contacts_adapter
from worker.contacts import MESSAGE_FIELDS
from worker.errors import SettingsError
from worker.settings import Settings


def result(total: int, rejected: dict[int, str], chunk: int = 50) -> EnqueueResult:
    """What enqueue_contacts returns: accepted ids `<message>:<position>`, `chunk` a message."""
    out = EnqueueResult()
    accepted = [i for i in range(total) if i not in rejected]
    for k, index in enumerate(accepted):
        out.accepted.append((index, f"m{k // chunk}-id:{k % chunk}"))
    out.rejected = [Rejection(i, reason, f"bad {i}") for i, reason in rejected.items()]
    return out


def test_the_answer_lists_each_contact_in_order_with_its_id() -> None:
    outcomes = Outcomes.of(5, result(5, {1: "invalid_number", 3: "invalid_name"}, chunk=2))
    assert outcomes.answer() == {
        "accepted": 3,
        "rejected": 2,
        "contacts": [
            {"index": 0, "status": "accepted", "contactId": "m0-id:0"},
            {"index": 1, "status": "rejected", "reason": "invalid_number", "message": "bad 1"},
            {"index": 2, "status": "accepted", "contactId": "m0-id:1"},
            {"index": 3, "status": "rejected", "reason": "invalid_name", "message": "bad 3"},
            {"index": 4, "status": "accepted", "contactId": "m1-id:0"},
        ],
    }


@pytest.mark.parametrize(
    ("total", "rejected"),
    [(1, {}), (1, {0: "invalid_number"}), (120, {}), (120, {0: "a", 50: "b", 119: "c"})],
)
def test_a_stored_record_gives_the_same_answer_again(total: int, rejected: dict[int, str]) -> None:
    outcomes = Outcomes.of(total, result(total, rejected))
    stored_fingerprint, again = Outcomes.decode(outcomes.encode("f" * 32).encode())
    assert stored_fingerprint == "f" * 32
    assert again.answer() == outcomes.answer()


def test_the_record_is_small() -> None:
    outcomes = Outcomes.of(100, result(100, {}))
    assert len(outcomes.encode(fingerprint(b"x"))) < 200
    assert len(json.dumps(outcomes.answer())) > 4000


def test_the_fingerprint_is_of_the_bytes() -> None:
    assert fingerprint(b'{"a": 1}') == fingerprint(b'{"a": 1}')
    assert fingerprint(b'{"a": 1}') != fingerprint(b'{"a":1}')


def test_every_field_maps_to_a_name_validate_contact_takes() -> None:
    aliases = {field.alias or name for name, field in ContactIn.model_fields.items()}
    assert {"numberToCall", "firstName", "lastName", "metadata", "promptTags"} <= aliases
    assert {"aiSettingsTemplateId", "updateExisting", "dedupeKey"} <= aliases
    assert set(ContactIn.model_fields) <= MESSAGE_FIELDS


def test_one_object_and_a_list_parse_to_python_names() -> None:
    adapter = contacts_adapter(10)
    (one,) = parse_contacts(b'{"numberToCall": "+966501234567", "firstName": null}', adapter)
    assert one.fields() == {"number": "+966501234567"}
    many = parse_contacts(
        b'[{"numberToCall": "1", "aiSettingsTemplateId": "t", "updateExisting": false}]', adapter
    )
    assert [c.fields() for c in many] == [
        {"number": "1", "template_id": "t", "update_existing": False}
    ]


@pytest.mark.parametrize(
    "body", [b"", b"nan", b"null", b"true", b'"x"', b"[]", b"[1]", b'{"numberToCall": 1}']
)
def test_malformed_bodies_raise_invalid(body: bytes) -> None:
    with pytest.raises(Invalid) as caught:
        parse_contacts(body, contacts_adapter(10))
    assert all(issue["loc"][0] == "body" for issue in caught.value.issues)


def test_tokens_are_split_on_commas_and_white_space() -> None:
    settings = Settings.from_env({"LEVERS_INGEST_TOKENS": " aaaaaaaaaaaaaaaa,\nbbbbbbbbbbbbbbbb "})
    assert settings.ingest_token_list == ["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]
    assert "aaaa" not in repr(settings)


@pytest.mark.parametrize(
    "raw", ["short", "aaaaaaaaaaaaaaaa,tiny", ",", "caf\u00e9-token-0123456789"]
)
def test_weak_or_odd_tokens_are_refused_without_echo(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"LEVERS_INGEST_TOKENS": raw})
    assert "LEVERS_INGEST_TOKENS" in str(caught.value)
    if raw != ",":
        assert raw not in str(caught.value)
