"""Configuration, read once from the environment into one frozen object.

`Settings.from_env(mapping)` takes any mapping, so tests pass a plain dict. Every bad
variable is collected and reported in one `SettingsError`, so an operator fixes a broken
deployment in one round instead of one variable per restart.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import phonenumbers

from worker.errors import SettingsError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """Every knob of the worker, with its unit in the name or the comment."""

    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)  # may hold a password
    namespace: str = "levers"
    base_url: str = "https://api.dev.uselevers.com"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    api_token: str | None = field(default=None, repr=False)
    batch_max_size: int = 100
    batch_max_wait_seconds: float = 2.0
    max_requests_per_second: float = 5.0
    max_contacts_per_minute: int = 0  # 0 = no limit
    # Adaptive mode: find an unknown rate limit (see worker/ratelimit.py).
    adaptive_rate: bool = False
    adaptive_min_requests_per_second: float = 0.5
    adaptive_step: float = 0.05
    # Requests on the wire at once across every replica (0 = no cap).
    max_in_flight: int = 10
    # Arrival jitter tolerated per second by the request spacing, ms (see worker/ratelimit.py).
    rate_jitter_ms: float = 40.0
    dedupe_window_seconds: int = 3600  # 0 = no cross-batch dedupe
    default_region: str | None = None
    metrics_port: int = 9191
    # Distinct batch keys shown as labels; the rest fold into `other`.
    metrics_max_batch_keys: int = 20
    # HTTP timeouts for the Levers API, seconds.
    connect_timeout_seconds: float = 5.0
    request_timeout_seconds: float = 30.0
    # A send attempt that fails with a connection error or 5xx is retried this many times.
    max_send_retries: int = 8
    # ... and a batch still failing this long after its first attempt is given up, s.
    max_retry_seconds: float = 3600.0
    # How long a `sending` claim is trusted before the batch is treated as an unknown outcome.
    send_lease_seconds: float = 120.0
    # Resend a batch whose request may have reached Levers (unknown outcome) instead of
    # dead-lettering it: for accounts that prefer a possible duplicate call to a missed one.
    resend_unknown: bool = False
    # Sent batch records are kept this long for `levers-admin` and reconciliation.
    batch_retention_seconds: int = 86400
    # Dead letters are kept this long for an operator to replay or purge, s.
    dead_letter_retention_seconds: int = 30 * 86400
    # dramatiq: how often an idle consumer polls Redis, ms. Bounds the pickup latency (G3).
    worker_timeout_ms: int = 100
    # dramatiq: contact messages one process fetches ahead (dramatiq's default is 2 x threads).
    # Fetching in bulk saves round trips; the cost is that a killed process holds this many
    # messages (up to 50 contacts each from enqueue_contacts) until its heartbeat times out.
    contacts_prefetch: int = 32
    # dramatiq: a worker silent for this long is presumed dead and its messages requeued, ms.
    heartbeat_timeout_ms: int = 15_000
    # dramatiq: per million broker commands, how many run the maintenance that requeues a dead
    # worker's messages (dramatiq's default is 1000).
    maintenance_chance: int = 10_000
    log_level: str = "INFO"
    log_format: str = "text"  # or "json"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: `os.environ`), raising one error for all faults."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        values: dict[str, Any] = {
            "redis_url": reader.text("REDIS_URL", cls.redis_url),
            "namespace": reader.text("LEVERS_NAMESPACE", cls.namespace, check=_namespace),
            "base_url": reader.text("LEVERS_BASE_URL", cls.base_url, check=_http_url).rstrip("/"),
            "client_id": reader.optional("LEVERS_CLIENT_ID"),
            "client_secret": reader.secret("LEVERS_CLIENT_SECRET"),
            "api_token": reader.secret("LEVERS_API_TOKEN"),
            "batch_max_size": reader.integer(
                "LEVERS_BATCH_MAX_SIZE", cls.batch_max_size, 1, 10_000
            ),
            "batch_max_wait_seconds": reader.number(
                "LEVERS_BATCH_MAX_WAIT_SECONDS", cls.batch_max_wait_seconds, 0.05, 86_400
            ),
            "max_requests_per_second": reader.number(
                "LEVERS_MAX_REQUESTS_PER_SECOND", cls.max_requests_per_second, 0.01, 10_000
            ),
            "max_contacts_per_minute": reader.integer(
                "LEVERS_MAX_CONTACTS_PER_MINUTE", cls.max_contacts_per_minute, 0, 10**9
            ),
            "adaptive_rate": reader.boolean("LEVERS_ADAPTIVE_RATE", cls.adaptive_rate),
            "adaptive_min_requests_per_second": reader.number(
                "LEVERS_ADAPTIVE_MIN_REQUESTS_PER_SECOND",
                cls.adaptive_min_requests_per_second,
                0.01,
                10_000,
            ),
            "adaptive_step": reader.number("LEVERS_ADAPTIVE_STEP", cls.adaptive_step, 0.001, 100),
            "max_in_flight": reader.integer("LEVERS_MAX_IN_FLIGHT", cls.max_in_flight, 0, 10_000),
            "rate_jitter_ms": reader.number("LEVERS_RATE_JITTER_MS", cls.rate_jitter_ms, 0, 500),
            "dedupe_window_seconds": reader.integer(
                "LEVERS_DEDUPE_WINDOW_SECONDS", cls.dedupe_window_seconds, 0, 365 * 86400
            ),
            "default_region": _upper(reader.optional("LEVERS_DEFAULT_REGION", check=_region)),
            "metrics_port": reader.integer("LEVERS_METRICS_PORT", cls.metrics_port, 0, 65535),
            "metrics_max_batch_keys": reader.integer(
                "LEVERS_METRICS_MAX_BATCH_KEYS", cls.metrics_max_batch_keys, 1, 1000
            ),
            "connect_timeout_seconds": reader.number(
                "LEVERS_CONNECT_TIMEOUT_SECONDS", cls.connect_timeout_seconds, 0.1, 600
            ),
            "request_timeout_seconds": reader.number(
                "LEVERS_REQUEST_TIMEOUT_SECONDS", cls.request_timeout_seconds, 0.1, 3600
            ),
            "max_send_retries": reader.integer(
                "LEVERS_MAX_SEND_RETRIES", cls.max_send_retries, 0, 1000
            ),
            "max_retry_seconds": reader.number(
                "LEVERS_MAX_RETRY_SECONDS", cls.max_retry_seconds, 1, 7 * 86400
            ),
            "send_lease_seconds": reader.number(
                "LEVERS_SEND_LEASE_SECONDS", cls.send_lease_seconds, 1, 86_400
            ),
            "resend_unknown": reader.boolean("LEVERS_RESEND_UNKNOWN", cls.resend_unknown),
            "batch_retention_seconds": reader.integer(
                "LEVERS_BATCH_RETENTION_SECONDS", cls.batch_retention_seconds, 60, 365 * 86400
            ),
            "dead_letter_retention_seconds": reader.integer(
                "LEVERS_DEAD_LETTER_RETENTION_SECONDS",
                cls.dead_letter_retention_seconds,
                60,
                3650 * 86400,
            ),
            "worker_timeout_ms": reader.integer(
                "LEVERS_WORKER_TIMEOUT_MS", cls.worker_timeout_ms, 10, 60_000
            ),
            "contacts_prefetch": reader.integer(
                "LEVERS_CONTACTS_PREFETCH", cls.contacts_prefetch, 1, 65535
            ),
            "heartbeat_timeout_ms": reader.integer(
                "LEVERS_HEARTBEAT_TIMEOUT_MS", cls.heartbeat_timeout_ms, 1_000, 3_600_000
            ),
            "maintenance_chance": reader.integer(
                "LEVERS_MAINTENANCE_CHANCE", cls.maintenance_chance, 1, 1_000_000
            ),
            "log_format": reader.text("LEVERS_LOG_FORMAT", cls.log_format, check=_log_format),
            "log_level": reader.text("LEVERS_LOG_LEVEL", cls.log_level, check=_log_level).upper(),
        }
        if reader.errors:
            raise SettingsError(reader.errors)
        return cls(**values)

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_token or (self.client_id and self.client_secret))


def settings_or_exit() -> Settings:
    """For commands: the settings, or every problem on stderr and exit status 2."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


class _Reader:
    """Reads typed values from a mapping and remembers every fault instead of stopping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(
        self, name: str, default: str, check: Callable[[str], str | None] | None = None
    ) -> str:
        value = self._raw(name)
        if value is None:
            return default
        problem = check(value) if check else None
        if problem:
            self.errors.append(f"{name}={value!r}: {problem}")
            return default
        return value

    def optional(self, name: str, check: Callable[[str], str | None] | None = None) -> str | None:
        value = self._raw(name)
        if value is None:
            return None
        problem = check(value) if check else None
        if problem:
            self.errors.append(f"{name}={value!r}: {problem}")
            return None
        return value

    def secret(self, name: str) -> str | None:
        """A secret from `NAME`, or from the file named by `NAME_FILE` (never echoed in errors)."""
        direct = self._raw(name)
        path = self._raw(f"{name}_FILE")
        if direct and path:
            self.errors.append(f"{name} and {name}_FILE: set one, not both")
            return None
        if path is None:
            return direct
        try:
            content = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            # The value is not echoed: it may be the secret itself, put here by mistake.
            self.errors.append(f"{name}_FILE: cannot read that file ({exc.strerror})")
            return None
        if not content:
            self.errors.append(f"{name}_FILE: the file is empty")
            return None
        return content

    def _parse(self, name: str, default: T, kind: Callable[[str], T], low: T, high: T) -> T:
        value = self._raw(name)
        if value is None:
            return default
        try:
            parsed = kind(value)
        except ValueError:
            self.errors.append(f"{name}={value!r}: not a {kind.__name__}")
            return default
        if not (low <= parsed <= high):  # type: ignore[operator]
            self.errors.append(f"{name}={value!r}: must be between {low} and {high}")
            return default
        return parsed

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        return self._parse(name, default, int, low, high)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        return self._parse(name, default, float, low, high)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.errors.append(f"{name}={value!r}: not a boolean (true/false)")
        return default


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None


def _namespace(value: str) -> str | None:
    if any(ch.isspace() or ch in "{}*?[]" for ch in value):
        return "must not contain spaces, braces or glob characters"
    return None


def _http_url(value: str) -> str | None:
    if not value.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    return None


def _region(value: str) -> str | None:
    if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        return "not a region code phonenumbers knows (e.g. SA, US, GB)"
    return None


def _log_format(value: str) -> str | None:
    if value not in {"text", "json"}:
        return "must be text or json"
    return None


def _log_level(value: str) -> str | None:
    if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        return "must be DEBUG, INFO, WARNING or ERROR"
    return None
