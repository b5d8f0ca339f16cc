"""`levers-enqueue` row reading: column aliases, tag:/meta: columns, JSON cells, CSV and JSONL."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from producers.importer import RowError, normalise_row, read_rows
from worker.contacts import Contact, validate_contact

TEMPLATE = "0b6f3f4e-6a43-4a5e-9e59-7f3b3c1d2a10"
SARA = "+966501234567"
JOHN = "+14155552671"


def write_csv(path: Path, header: list[str], *rows: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


# --- normalise_row -------------------------------------------------------------------------


def test_levers_aliases_in_a_csv_row() -> None:
    raw = {
        "numberToCall": SARA,
        "firstName": "Sara",
        "lastName": "Ali",
        "aiSettingsTemplateId": TEMPLATE,
        "updateExisting": "true",
        "promptTags": '{"amount": "120"}',
    }
    row = normalise_row(raw, from_csv=True)
    assert row == {
        "number": SARA,
        "first_name": "Sara",
        "last_name": "Ali",
        "template_id": TEMPLATE,
        "update_existing": True,
        "prompt_tags": {"amount": "120"},
    }
    assert validate_contact(row) == Contact(
        number=SARA,
        first_name="Sara",
        last_name="Ali",
        template_id=TEMPLATE,
        update_existing=True,
        prompt_tags={"amount": "120"},
    )


def test_levers_aliases_in_a_jsonl_row() -> None:
    raw = {
        "numberToCall": SARA,
        "firstName": "Sara",
        "aiSettingsTemplateId": TEMPLATE,
        "updateExisting": True,
        "promptTags": {"amount": "120"},
    }
    assert normalise_row(raw, from_csv=False) == {
        "number": SARA,
        "first_name": "Sara",
        "template_id": TEMPLATE,
        "update_existing": True,
        "prompt_tags": {"amount": "120"},
    }


def test_phone_is_an_alias_of_number() -> None:
    assert normalise_row({"phone": SARA}, from_csv=True) == {"number": SARA}


def test_python_names_pass_through() -> None:
    raw = {"number": "0501234567", "region": "SA", "dedupe_key": "inv-7", "first_name": "Sara"}
    assert normalise_row(raw, from_csv=True) == raw


def test_empty_csv_cells_are_absent() -> None:
    raw = {"number": SARA, "first_name": "", "template_id": "", "update_existing": ""}
    assert normalise_row(raw, from_csv=True) == {"number": SARA}


def test_schedule_cells_in_csv_are_iso_8601_or_epoch_seconds() -> None:
    raw = {
        "number": SARA,
        "not_before": "2026-12-03T09:00:00+03:00",
        "expire_at": "1796371200",
        "time_zone": "Asia/Riyadh",
    }
    row = normalise_row(raw, from_csv=True)
    assert row == {**raw, "expire_at": 1796371200.0}
    contact = validate_contact(row)
    assert contact.not_before == 1796277600.0 and contact.expire_at == 1796371200.0
    assert contact.time_zone == "Asia/Riyadh"
    # Text that is neither stays text, and validation refuses it as the API does.
    assert normalise_row({"number": SARA, "not_before": "tomorrow"}, from_csv=True) == {
        "number": SARA,
        "not_before": "tomorrow",
    }


def test_tag_and_meta_columns() -> None:
    raw = {"number": SARA, "tag:amount": "120", "tag:due": "July", "meta:crm_id": "42"}
    assert normalise_row(raw, from_csv=True) == {
        "number": SARA,
        "prompt_tags": {"amount": "120", "due": "July"},
        "metadata": {"crm_id": "42"},
    }


def test_empty_tag_and_meta_cells_are_absent() -> None:
    raw = {"number": SARA, "tag:amount": "", "meta:crm_id": ""}
    assert normalise_row(raw, from_csv=True) == {"number": SARA}


def test_tag_and_meta_columns_merge_into_json_cells_and_win() -> None:
    raw = {
        "number": SARA,
        "metadata": '{"crm_id": "1", "source": "crm"}',
        "meta:crm_id": "42",
        "prompt_tags": '{"amount": "100", "due": "July"}',
        "tag:amount": "120",
    }
    row = normalise_row(raw, from_csv=True)
    assert row["metadata"] == {"crm_id": "42", "source": "crm"}
    assert row["prompt_tags"] == {"amount": "120", "due": "July"}


def test_tag_and_meta_keys_in_jsonl() -> None:
    raw = {"number": SARA, "metadata": {"source": "crm"}, "meta:crm_id": 42, "tag:amount": "120"}
    assert normalise_row(raw, from_csv=False) == {
        "number": SARA,
        "metadata": {"source": "crm", "crm_id": 42},
        "prompt_tags": {"amount": "120"},
    }


def test_json_cells_are_decoded_in_csv() -> None:
    raw = {
        "number": SARA,
        "metadata": '{"crm_id": "42", "nested": {"a": [1, 2]}}',
        "promptTags": '{"amount": "120"}',
    }
    assert normalise_row(raw, from_csv=True) == {
        "number": SARA,
        "metadata": {"crm_id": "42", "nested": {"a": [1, 2]}},
        "prompt_tags": {"amount": "120"},
    }


def test_strings_are_not_decoded_in_jsonl() -> None:
    """JSONL carries real objects; a string there is a string, and validation will refuse it."""
    raw = {"number": SARA, "metadata": '{"crm_id": "42"}'}
    assert normalise_row(raw, from_csv=False) == raw


@pytest.mark.parametrize("field", ["metadata", "prompt_tags", "promptTags"])
@pytest.mark.parametrize("cell", ["{crm_id: 42}", "{'a': 'b'}", "{", "not json"])
def test_bad_json_cell_is_a_row_error(field: str, cell: str) -> None:
    with pytest.raises(RowError) as caught:
        normalise_row({"number": SARA, field: cell}, from_csv=True)
    assert field.replace("promptTags", "prompt_tags") in str(caught.value)


@pytest.mark.parametrize(
    ("column", "json_column", "cell"),
    [
        ("tag:amount", "prompt_tags", "[1, 2]"),
        ("tag:amount", "promptTags", '"120"'),
        ("meta:crm_id", "metadata", "5"),
        ("meta:crm_id", "metadata", '["a"]'),
    ],
)
def test_non_object_json_cell_with_a_column_is_a_row_error(
    column: str, json_column: str, cell: str
) -> None:
    """A bad row must be reported as a row error, not crash the whole import."""
    with pytest.raises(RowError):
        normalise_row({"number": SARA, json_column: cell, column: "42"}, from_csv=True)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("y", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("N", False),
    ],
)
@pytest.mark.parametrize("column", ["update_existing", "updateExisting"])
def test_boolean_cells(column: str, cell: str, expected: bool) -> None:
    row = normalise_row({"number": SARA, column: cell}, from_csv=True)
    assert row["update_existing"] is expected


@pytest.mark.parametrize("cell", ["maybe", "2", "t", "yess", "on"])
def test_bad_boolean_cell_is_a_row_error(cell: str) -> None:
    with pytest.raises(RowError, match="update_existing"):
        normalise_row({"number": SARA, "update_existing": cell}, from_csv=True)


def test_extra_cell_key_is_a_row_error() -> None:
    with pytest.raises(RowError, match="more cells than the header"):
        normalise_row({"number": SARA, None: ["surplus"]}, from_csv=True)  # type: ignore[dict-item]


# --- read_rows: CSV ------------------------------------------------------------------------


def test_read_csv(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "contacts.csv",
        ["numberToCall", "firstName", "updateExisting", "tag:amount", "meta:crm_id", "metadata"],
        [SARA, "Sara", "yes", "120", "42", '{"source": "crm"}'],
        [JOHN, "", "", "", "", ""],
    )
    assert list(read_rows(path, "csv")) == [
        {
            "number": SARA,
            "first_name": "Sara",
            "update_existing": True,
            "prompt_tags": {"amount": "120"},
            "metadata": {"source": "crm", "crm_id": "42"},
        },
        {"number": JOHN},
    ]


def test_read_csv_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffnumber,first_name\r\n+966501234567,Sara\r\n".encode())
    assert list(read_rows(path, "csv")) == [{"number": SARA, "first_name": "Sara"}]


def test_read_csv_quoted_cells(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text(
        'number,last_name,metadata\n+966501234567,"Al-Qahtani,\nJr.","{""note"": ""a, b""}"\n',
        encoding="utf-8",
    )
    assert list(read_rows(path, "csv")) == [
        {"number": SARA, "last_name": "Al-Qahtani,\nJr.", "metadata": {"note": "a, b"}}
    ]


def test_read_csv_extra_cell_is_a_row_error_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "extra.csv"
    path.write_text(f"number,first_name\n{SARA},Sara,surplus\n{JOHN},John\n", encoding="utf-8")
    first, second = read_rows(path, "csv")
    assert isinstance(first, RowError)
    assert "more cells than the header" in str(first)
    assert second == {"number": JOHN, "first_name": "John"}


def test_read_csv_bad_cells_are_row_errors_and_reading_goes_on(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "bad.csv",
        ["number", "metadata", "update_existing"],
        [SARA, "{oops", ""],
        [SARA, "", "perhaps"],
        [JOHN, '{"ok": true}', "no"],
    )
    items = list(read_rows(path, "csv"))
    assert [type(item) for item in items] == [RowError, RowError, dict]
    assert items[2] == {"number": JOHN, "metadata": {"ok": True}, "update_existing": False}


def test_read_csv_non_object_json_cell_with_a_column_does_not_crash(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "tags.csv",
        ["number", "prompt_tags", "tag:amount"],
        [SARA, "[1, 2]", "120"],
        [JOHN, "", "99"],
    )
    first, second = read_rows(path, "csv")
    assert isinstance(first, RowError)
    assert second == {"number": JOHN, "prompt_tags": {"amount": "99"}}


def test_read_csv_short_row_is_not_handed_on_with_none_values(tmp_path: Path) -> None:
    """A row with fewer cells than the header: DictReader fills the missing cells with None."""
    path = tmp_path / "short.csv"
    path.write_text(
        f"number,first_name,update_existing,tag:amount\n{SARA}\n{SARA},,,\n", encoding="utf-8"
    )
    short, blank = read_rows(path, "csv")
    assert blank == {"number": SARA}
    # Either reading is defensible: missing trailing cells count as empty, or the row is refused
    # like a row with too many cells. Handing None on (so that validation rejects the row as
    # `update_existing must be true or false`) is neither.
    assert isinstance(short, RowError) or short == blank


# --- read_rows: JSONL ----------------------------------------------------------------------


def test_read_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "contacts.jsonl",
        "",
        json.dumps({"numberToCall": SARA, "promptTags": {"amount": "120"}}),
        "   ",
        "\t",
        json.dumps({"number": JOHN, "updateExisting": True}),
        "",
    )
    assert list(read_rows(path, "jsonl")) == [
        {"number": SARA, "prompt_tags": {"amount": "120"}},
        {"number": JOHN, "update_existing": True},
    ]


def test_read_jsonl_with_crlf_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(f'\ufeff{{"number": "{SARA}"}}\r\n\r\n{{"number": "{JOHN}"}}\r\n'.encode())
    assert list(read_rows(path, "jsonl")) == [{"number": SARA}, {"number": JOHN}]


@pytest.mark.parametrize("line", ["[1, 2]", '"+966501234567"', "966501234567", "null", "true"])
def test_read_jsonl_non_object_line_is_a_row_error(tmp_path: Path, line: str) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", line, json.dumps({"number": JOHN}))
    first, second = read_rows(path, "jsonl")
    assert isinstance(first, RowError)
    assert "object" in str(first)
    assert second == {"number": JOHN}


@pytest.mark.parametrize("line", ["{number: 1}", "{'number': '+1'}", '{"number": ', "nope"])
def test_read_jsonl_bad_json_is_a_row_error(tmp_path: Path, line: str) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", line, json.dumps({"number": JOHN}))
    first, second = read_rows(path, "jsonl")
    assert isinstance(first, RowError)
    assert "not valid JSON" in str(first)
    assert second == {"number": JOHN}


def test_read_jsonl_non_object_metadata_with_a_meta_key_does_not_crash(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "x.jsonl",
        json.dumps({"number": SARA, "metadata": "crm", "meta:crm_id": "42"}),
        json.dumps({"number": JOHN}),
    )
    items: list[Any] = list(read_rows(path, "jsonl"))
    assert isinstance(items[0], RowError)
    assert items[1] == {"number": JOHN}
