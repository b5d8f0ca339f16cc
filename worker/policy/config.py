"""The calling policy file (TOML, read with the standard library's tomllib) and its defaults.

    load_policy(path)           -> CallingPolicy, or PolicyError listing every problem found,
                                   each with the TOML path of the value at fault
    default_policy("by_country") -> the policy used when there is no file (LEVERS_DEFAULT_WINDOW)
    policy_from_settings(settings)

The file's shape is documented, with a full example, in docs/calling-hours.md. Tables:
`[default]` (the rule of templates not listed), `[templates."<aiSettingsTemplateId>"]` and
`[templates.default]` (contacts with no template), `[countries.XX]` (windows for
`by_country`, over the presets), `[caps]`. A rule may carry `retries` (retries of calls that
did not reach the person) and `outcomes` (where the outcomes go to the producer): see
worker/policy/outcomes.py. A key this version does not know is an error, so a typo never
passes silently; a retry rule the caps would never let through is one too.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import phonenumbers

from worker.errors import PolicyError
from worker.policy.caps import DEFAULT_CAPS, caps_from_table
from worker.policy.outcomes import caps_conflicts, retries_from_table, route_from_table
from worker.policy.policy import DEFAULT_TEMPLATE, CallingPolicy, Rule, WindowChoice
from worker.policy.presets import BY_COUNTRY, PRESETS, canonical_window_name
from worker.policy.schedule import WINDOW_KEYS, has_window_keys, window_from_table
from worker.policy.windows import ALWAYS, Window
from worker.policy.zones import time_zone_problem
from worker.settings import Settings

TOP_KEYS = ("default", "templates", "countries", "caps")
RULE_KEYS = ("window", "time_zone", "caps", "retries", "outcomes", *WINDOW_KEYS)
COUNTRY_KEYS = ("window", *WINDOW_KEYS)
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
T = TypeVar("T")
D = TypeVar("D")


def load_policy(path: str | Path) -> CallingPolicy:
    """Read and check a policy file; PolicyError lists every problem at once."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise PolicyError([f"cannot read the file ({exc.strerror})"], source) from exc
    except UnicodeDecodeError as exc:
        raise PolicyError([f"not UTF-8 text ({exc.reason})"], source) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"not valid TOML: {exc}"], source) from exc
    return parse_policy(data, source)


def default_policy(window: str = BY_COUNTRY) -> CallingPolicy:
    """Every template under one window (LEVERS_DEFAULT_WINDOW), with the default caps."""
    name = canonical_window_name(window)
    if name is None:
        raise PolicyError([f"{window!r} is not by_country, always or a preset"], "window name")
    rule = Rule(_named_window(name, {}), origin=f"LEVERS_DEFAULT_WINDOW={name}")
    return CallingPolicy(default=rule, caps=DEFAULT_CAPS, source=rule.origin)


def policy_from_settings(settings: Settings) -> CallingPolicy:
    """The policy in force: LEVERS_POLICY_FILE when set, else LEVERS_DEFAULT_WINDOW."""
    if settings.policy_file:
        return load_policy(settings.policy_file)
    return default_policy(settings.default_window)


def policy_or_exit(settings: Settings) -> CallingPolicy:
    """For commands: the policy, or every problem on stderr and exit status 2."""
    try:
        return policy_from_settings(settings)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def parse_policy(data: Mapping[str, Any], source: str = "calling policy") -> CallingPolicy:
    problems: list[str] = []
    _unknown(data, TOP_KEYS, "", problems)
    countries = _countries(_table(data, "countries", "countries", problems), problems)
    named = {**PRESETS, **countries}
    caps = DEFAULT_CAPS
    if "caps" in data:
        parsed_caps = caps_from_table(data["caps"], "caps", DEFAULT_CAPS)
        caps = _collect(parsed_caps, problems, DEFAULT_CAPS)
    base = Rule(BY_COUNTRY, origin="[default]")
    default = _rule(_table(data, "default", "default", problems), "default", base, named, problems)
    templates: dict[str, Rule] = {}
    for key, table in _table(data, "templates", "templates", problems).items():
        path = f"templates.{_key(key)}"
        template = _template_key(key)
        if template is None:
            problems.append(f"{path}: not an aiSettingsTemplateId (a UUID) nor {DEFAULT_TEMPLATE}")
        elif template in templates:
            problems.append(f"{path}: the same template as another key (ids are not cased)")
        rule = _rule(table, path, default, named, problems)
        if template is not None:
            templates[template] = rule
            own = isinstance(table, Mapping) and "retries" in table
            if own or rule.caps is not default.caps:
                where = f"{path}.retries" if own else f"{path} (default.retries)"
                problems += caps_conflicts(rule.retries, (caps, rule.caps), where)
    problems += caps_conflicts(default.retries, (caps, default.caps), "default.retries")
    if problems:
        raise PolicyError(_in_file_order(problems, list(data)), source)
    return CallingPolicy(default, templates, countries, caps, source)


def _in_file_order(problems: list[str], keys: list[str]) -> list[str]:
    """Problems in the order their top-level tables appear in the file (a stable sort)."""

    def position(problem: str) -> int:
        head = re.split(r"[.:\[]", problem, maxsplit=1)[0]
        return keys.index(head) if head in keys else len(keys)

    return sorted(problems, key=position)


def _rule(
    table: Any, path: str, base: Rule, named: Mapping[str, Window], problems: list[str]
) -> Rule:
    """A rule from its table; keys left out keep `base`'s (the [default] rule's) values."""
    origin = f"[{path}]"
    if not isinstance(table, Mapping):
        problems.append(f"{path}: must be a table")
        return base
    _unknown(table, RULE_KEYS, path, problems)
    window = _window(table, path, named, problems, allow_by_country=True)
    time_zone = table.get("time_zone", base.time_zone)
    if "time_zone" in table and (problem := time_zone_problem(time_zone)):
        problems.append(f"{path}.time_zone: {problem}")
    caps = base.caps
    if "caps" in table:
        caps = _collect(caps_from_table(table["caps"], f"{path}.caps", base.caps), problems, caps)
    retries = base.retries
    if "retries" in table:
        retries = _collect(
            retries_from_table(table["retries"], f"{path}.retries"), problems, retries
        )
    outcomes = base.outcomes
    if "outcomes" in table:
        outcomes = _collect(
            route_from_table(table["outcomes"], f"{path}.outcomes"), problems, outcomes
        )
    return Rule(window or base.window, time_zone, caps, origin, retries, outcomes)


def _window(
    table: Mapping[str, Any],
    path: str,
    named: Mapping[str, Window],
    problems: list[str],
    *,
    allow_by_country: bool,
) -> WindowChoice | None:
    """The window a table names or describes; None when it has none (or a faulty one)."""
    if "window" in table and has_window_keys(table):
        problems.append(f"{path}: give either window or a custom window (days, hours), not both")
        return None
    if "window" in table:
        value = table["window"]
        name = canonical_window_name(value) if isinstance(value, str) else None
        if name is None and isinstance(value, str) and value.upper() in named:
            name = value.upper()
        if name is None or (name == BY_COUNTRY and not allow_by_country):
            choices = "always, " if not allow_by_country else "by_country, always, "
            problems.append(
                f"{path}.window: {value!r} is not {choices}a preset or a [countries] window "
                f"({', '.join(sorted(named))})"
            )
            return None
        return _named_window(name, named)
    if has_window_keys(table):
        return _collect(window_from_table(table, f"custom [{path}]", path), problems, None)
    return None


def _named_window(name: str, named: Mapping[str, Window]) -> WindowChoice:
    if name == BY_COUNTRY:
        return BY_COUNTRY
    if name == ALWAYS.name:
        return ALWAYS
    return named.get(name) or PRESETS[name]


def _countries(tables: Mapping[str, Any], problems: list[str]) -> dict[str, Window]:
    countries: dict[str, Window] = {}
    for key, table in tables.items():
        path = f"countries.{_key(key)}"
        region = key.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            problems.append(f"{path}: not a region code phonenumbers knows (e.g. SA, FR, CA)")
            continue
        if not isinstance(table, Mapping):
            problems.append(f"{path}: must be a table")
            continue
        _unknown(table, COUNTRY_KEYS, path, problems)
        window = _window(table, path, PRESETS, problems, allow_by_country=False)
        if window is None and "window" not in table and not has_window_keys(table):
            problems.append(f'{path}: names no window (window = "US", or days + hours)')
        if isinstance(window, Window):
            countries[region] = window
    return countries


def _template_key(key: str) -> str | None:
    if key == DEFAULT_TEMPLATE:
        return key
    try:
        return str(uuid.UUID(key))  # canonical lower case, as contacts carry it
    except ValueError:
        return None


def _table(data: Mapping[str, Any], name: str, path: str, problems: list[str]) -> Any:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        problems.append(f"{path}: must be a table")
        return {}
    return value


def _unknown(
    table: Mapping[str, Any], known: tuple[str, ...], path: str, problems: list[str]
) -> None:
    for key in table:
        if key in known:
            continue
        where = f"{path}.{_key(key)}" if path else _key(key)
        problems.append(f"{where}: unknown key (expected one of: {', '.join(known)})")


def _collect(result: T | list[str], problems: list[str], fallback: D) -> T | D:
    if isinstance(result, list):
        problems.extend(result)
        return fallback
    return result


def _key(key: str) -> str:
    """A key as TOML writes it in a dotted path: bare when it can be, quoted otherwise."""
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)
