"""Which environment variables levers-batcher reads, for the tests of the deploy files.

A helper, not a test module. A variable in compose.yaml or a Kubernetes manifest must be a
setting declared in worker/settings.py, the NAME_FILE of a secret one, a variable a library
reads, or a setting the deploy files name before worker/settings.py declares it
(PENDING_SETTINGS, each with the capability it belongs to).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.settings import declared

# Settings the deploy files name before worker/settings.py declares them; remove each name once
# its setting is declared there (the tests then check it like every other).
PENDING_SETTINGS: dict[str, str] = {}
# Pending settings that will be secrets, so NAME_FILE is expected to work for them.
PENDING_SECRETS: set[str] = set()
# What a secret's file holds in these tests: a value each secret's own check accepts.
PLAUSIBLE_SECRETS = {
    "LEVERS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "LEVERS_CALLBACK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
# Variables that are not settings of ours but are read by a library.
LIBRARY_VARIABLES = {
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client's multiprocess directory (levers-worker)",
}


def settings_by_variable() -> dict[str, Any]:
    """Each declared setting's field, by its environment variable."""
    return {f.metadata["env"]: f for f in declared()}


def variable_problem(name: str) -> str | None:
    """Why `name` is not a variable levers-batcher reads, or None."""
    known = settings_by_variable()
    if name in known or name in PENDING_SETTINGS or name in LIBRARY_VARIABLES:
        return None
    if name.endswith("_FILE"):
        base = name[: -len("_FILE")]
        if base in known:
            if known[base].metadata["secret"]:
                return None
            return f"{base} is not a secret setting, so {name} is never read"
        if base in PENDING_SECRETS:
            return None
    return "not a setting in worker/settings.py"


def settings_source(values: Mapping[str, str], secrets_dir: Path) -> dict[str, str]:
    """`values` ready for Settings.from_env: pending and library variables left out, and every
    *_FILE pointed at a file in `secrets_dir` that holds a plausible value."""
    source: dict[str, str] = {}
    for name, value in values.items():
        base = secret_of(name)
        if name in PENDING_SETTINGS or base in PENDING_SETTINGS or name in LIBRARY_VARIABLES:
            continue
        if base is not None:
            path = secrets_dir / base.lower()
            path.write_text(
                PLAUSIBLE_SECRETS.get(base, "a-test-value-for-every-secret") + "\n",
                encoding="utf-8",
            )
            value = str(path)
        source[name] = value
    return source


def secret_of(name: str) -> str | None:
    """The secret setting that `name` (NAME_FILE) reads from a file, or None."""
    if not name.endswith("_FILE"):
        return None
    base = name[: -len("_FILE")]
    known = settings_by_variable()
    if (base in known and known[base].metadata["secret"]) or base in PENDING_SECRETS:
        return base
    return None
