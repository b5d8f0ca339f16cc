"""From a file's columns (CSV) or keys (JSONL) to the producer API's contact fields.

Names are the Python API's (`number`, `first_name`, ...) or Levers' own (`numberToCall`,
`firstName`, ...); `tag:NAME` / `meta:NAME` add one prompt tag / metadata field; options map
other columns (`--number-column`, `--metadata-columns`, `--prompt-tag-columns`). A CSV header
is checked once, before any row is read: a column nothing can take, two columns for one field
or no number column is a `HeaderError` (the whole file is refused). A row that cannot be read
is a `RowError` (that row is rejected, the rest go on).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.contacts import MESSAGE_FIELDS

ALIASES = {
    "numberToCall": "number",
    "phone": "number",
    "firstName": "first_name",
    "lastName": "last_name",
    "aiSettingsTemplateId": "template_id",
    "updateExisting": "update_existing",
    "promptTags": "prompt_tags",
}
NUMBER_NAMES = ("number", "numberToCall", "phone")
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n", ""}
# A schedule cell of digits is epoch seconds (a CSV cell is always text; ISO 8601 stays text).
_EPOCH = re.compile(r"\d+(?:\.\d+)?")
_SCHEDULE = ("not_before", "expire_at")
TAG, META = "tag:", "meta:"


class RowError(ValueError):
    """One row cannot be read; it is rejected as `invalid_row` and the import goes on."""


class HeaderError(ValueError):
    """The file's columns cannot be imported; nothing is read or enqueued."""


@dataclass(frozen=True)
class ColumnMap:
    """The column options of one import."""

    number_column: str | None = None
    metadata_columns: tuple[str, ...] = ()
    prompt_tag_columns: tuple[str, ...] = ()
    renames: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def build(
        cls,
        number_column: str | None = None,
        metadata_columns: Iterable[str] = (),
        prompt_tag_columns: Iterable[str] = (),
    ) -> ColumnMap:
        metadata, tags = tuple(metadata_columns), tuple(prompt_tag_columns)
        renames = {name: META + name for name in metadata} | {name: TAG + name for name in tags}
        if number_column:
            renames[number_column] = "number"
        return cls(number_column, metadata, tags, renames)

    def canonical(self, name: str) -> str:
        """The field (or `tag:`/`meta:` entry) a column or key feeds."""
        if name in self.renames:
            return self.renames[name]
        return ALIASES.get(name, name)

    def options(self) -> dict[str, Any]:
        return {
            "number_column": self.number_column,
            "metadata_columns": list(self.metadata_columns),
            "prompt_tag_columns": list(self.prompt_tag_columns),
        }


def plan_header(header: Sequence[str], mapping: ColumnMap) -> list[str]:
    """The canonical name of each CSV column; HeaderError when the header cannot be imported."""
    canonical = [mapping.canonical(name.strip()) for name in header]
    problems: list[str] = []
    blank = [str(i + 1) for i, name in enumerate(header) if not name.strip()]
    if blank:
        problems.append(f"column {', '.join(blank)} of the header has no name")
    unknown = [
        name.strip()
        for name, canon in zip(header, canonical, strict=True)
        if name.strip() and canon not in MESSAGE_FIELDS and not canon.startswith((TAG, META))
    ]
    if unknown:
        problems.append(
            f"unknown column {', '.join(repr(n) for n in unknown)}: map it with "
            "--metadata-columns or --prompt-tag-columns, or name it meta:NAME or tag:NAME"
        )
    seen: dict[str, str] = {}
    for name, canon in zip(header, canonical, strict=True):
        if canon in seen and name.strip():
            problems.append(f"columns {seen[canon]!r} and {name.strip()!r} both give {canon}")
        seen.setdefault(canon, name.strip())
    missing = [
        name
        for name in (
            *([mapping.number_column] if mapping.number_column else []),
            *mapping.metadata_columns,
            *mapping.prompt_tag_columns,
        )
        if name not in [h.strip() for h in header]
    ]
    if missing:
        problems.append(f"no column {', '.join(repr(n) for n in missing)} in the header")
    if "number" not in canonical and not missing:
        problems.append(
            "no number column: name it " + ", ".join(NUMBER_NAMES) + " or pass --number-column"
        )
    if problems:
        shown = ", ".join(h for h in header) or "(nothing)"
        raise HeaderError("; ".join(problems) + f" (the header is: {shown})")
    return canonical


# How a planned column feeds a row (see `compile_columns`).
_FIELD, _TAG, _META, _JSON, _FLAG = range(5)


def compile_columns(columns: Sequence[str]) -> list[tuple[int, str]]:
    """Per column, what it feeds: a field, a prompt tag, a metadata entry, a JSON cell, a flag."""
    plan = []
    for name in columns:
        if name.startswith(TAG):
            plan.append((_TAG, name[len(TAG) :]))
        elif name.startswith(META):
            plan.append((_META, name[len(META) :]))
        elif name in ("metadata", "prompt_tags"):
            plan.append((_JSON, name))
        elif name == "update_existing":
            plan.append((_FLAG, name))
        else:
            plan.append((_FIELD, name))
    return plan


def row_from_cells(cells: Sequence[str], plan: Sequence[tuple[int, str]]) -> dict[str, Any]:
    """The contact fields of one CSV row; the same as `normalise_row` of its cells by name,
    in a third of the time (this runs once per row of a file)."""
    if len(cells) > len(plan):
        raise RowError(f"the row has more cells than the header ({len(cells)} > {len(plan)})")
    row: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    # A short row's missing cells are empty cells; empty cells are absent fields.
    for (kind, name), cell in zip(plan, cells, strict=False):
        if cell == "":
            continue
        if kind == _FIELD:
            row[name] = cell
        elif kind == _TAG:
            tags[name] = cell
        elif kind == _META:
            meta[name] = cell
        elif kind == _JSON:
            try:
                row[name] = json.loads(cell)
            except json.JSONDecodeError as exc:
                raise RowError(f"{name} is not valid JSON: {exc.msg}") from exc
        else:
            flag = cell.lower()
            if flag not in _TRUE and flag not in _FALSE:
                raise RowError(f"update_existing {cell!r} is not true/false")
            row[name] = flag in _TRUE
    for name, extra in (("prompt_tags", tags), ("metadata", meta)):
        if extra:
            base = row.get(name) or {}
            if not isinstance(base, dict):
                raise RowError(f"{name} must be an object to add columns to it")
            row[name] = {**base, **extra}
    return row


def csv_row(cells: Sequence[str], columns: Sequence[str]) -> dict[str, Any]:
    """The contact fields of one CSV row, given the planned column names."""
    return row_from_cells(cells, compile_columns(columns))


def jsonl_row(obj: Mapping[str, Any], mapping: ColumnMap) -> dict[str, Any]:
    if mapping.renames:
        obj = {mapping.renames.get(key, key): value for key, value in obj.items()}
    return normalise_row(obj, from_csv=False)


def normalise_row(raw: Mapping[Any, Any], from_csv: bool) -> dict[str, Any]:
    """Aliases, `tag:`/`meta:` entries, and in CSV the JSON and true/false cells."""
    row: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for name, value in raw.items():
        if name is None:
            raise RowError("the row has more cells than the header")
        # csv.DictReader fills the cells a short row lacks with None: same as empty cells.
        if from_csv and value in ("", None):
            continue
        if name.startswith(TAG):
            tags[name[len(TAG) :]] = value
        elif name.startswith(META):
            meta[name[len(META) :]] = value
        else:
            row[ALIASES.get(name, name)] = value
    if from_csv:
        for name in ("metadata", "prompt_tags"):
            if isinstance(row.get(name), str):
                try:
                    row[name] = json.loads(row[name])
                except json.JSONDecodeError as exc:
                    raise RowError(f"{name} is not valid JSON: {exc.msg}") from exc
        flag = row.get("update_existing")
        if isinstance(flag, str):
            if flag.lower() not in _TRUE | _FALSE:
                raise RowError(f"update_existing {flag!r} is not true/false")
            row["update_existing"] = flag.lower() in _TRUE
        for name in _SCHEDULE:
            cell = row.get(name)
            if isinstance(cell, str) and _EPOCH.fullmatch(cell.strip()):
                row[name] = float(cell)
    for name, extra in (("prompt_tags", tags), ("metadata", meta)):
        if extra:
            base = row.get(name) or {}
            if not isinstance(base, dict):
                raise RowError(f"{name} must be an object to add columns to it")
            row[name] = {**base, **extra}
    return row
