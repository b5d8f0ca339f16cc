"""Configuration, read once from the environment into one frozen object.

Every setting is declared once, as a field of `Settings` whose metadata names its variable,
bounds and meaning (`env(...)`); `Settings.from_env(mapping)` reads them all from any mapping,
so tests pass a plain dict. Every bad variable is collected and reported in one
`SettingsError`, so an operator fixes a broken deployment in one round instead of one variable
per restart.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import phonenumbers

from worker.contacts import NUMBER_TYPES, ContactRules
from worker.errors import SettingsError
from worker.passwords import Users

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

Check = Callable[[str], str | None]


def env(
    name: str,
    default: Any,
    doc: str,
    *,
    kind: type | None = None,
    low: float | None = None,
    high: float | None = None,
    check: Check | None = None,
    secret: bool = False,
    normalise: Callable[[str], str] | None = None,
    sensitive: bool = False,
) -> Any:
    """Declare one setting: its variable, default, meaning and bounds, in one place.

    `kind` is needed only when the default is None (then the value is optional text).
    `secret` settings may also come from the file `NAME_FILE` and are never echoed;
    `sensitive` ones (a URL with a password) are kept out of `repr` but may be named.
    """
    return field(
        default=default,
        repr=not (secret or sensitive),
        metadata={
            "env": name,
            "doc": doc,
            "kind": kind or type(default),
            "low": low,
            "high": high,
            "check": check,
            "secret": secret,
            "normalise": normalise,
        },
    )


def _namespace(value: str) -> str | None:
    if any(ch.isspace() or ch in "{}*?[]" for ch in value):
        return "must not contain spaces, braces or glob characters"
    return None


def _http_url(value: str) -> str | None:
    if not value.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    return None


REDIS_SCHEMES = ("redis", "rediss", "unix")


def redis_url_problem(value: str) -> str | None:
    """Why `value` is not a Redis URL redis-py can use, or None."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in REDIS_SCHEMES:
        return "must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379/0)"
    if parts.scheme != "unix" and not parts.hostname:
        return "names no host (e.g. redis://127.0.0.1:6379/0)"
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        return "the path must be a database number (e.g. /0)"
    return None


def _sentinels(value: str) -> str | None:
    for item in value.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return "must be a comma-separated list of host:port (e.g. s1:26379,s2:26379)"
    return None


def _region(value: str) -> str | None:
    if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        return "not a region code phonenumbers knows (e.g. SA, US, GB)"
    return None


def _one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        if value.lower() not in choices:
            return "must be " + ", ".join(choices[:-1]) + " or " + choices[-1]
        return None

    return check


def _number_types(value: str) -> str | None:
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in NUMBER_TYPES]
    if not names or unknown:
        return "must be a comma-separated list of " + ", ".join(sorted(NUMBER_TYPES))
    return None


# Visible ASCII without commas: a token must survive a header and the comma-separated list.
_TOKEN = re.compile(r"[\x21-\x2b\x2d-\x7e]{16,512}")
MIN_TOKEN_LENGTH = 16


def split_tokens(value: str) -> list[str]:
    """The tokens of LEVERS_INGEST_TOKENS: separated by commas or white space (a file may hold
    one per line)."""
    return [part for part in re.split(r"[,\s]+", value) if part]


def _tokens(value: str) -> str | None:
    tokens = split_tokens(value)
    if not tokens or not all(_TOKEN.fullmatch(token) for token in tokens):
        # The value is never echoed: it is the secret.
        return (
            f"each token must be {MIN_TOKEN_LENGTH} to 512 visible ASCII characters "
            "without commas, separated by commas"
        )
    return None


def _console_users(value: str) -> str | None:
    try:
        Users.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


def _window_name(value: str) -> str | None:
    # Imported here: settings are read everywhere, the policy package only where it is used.
    from worker.policy.presets import WINDOW_NAMES, canonical_window_name

    if canonical_window_name(value) is None:
        return "must be " + ", ".join(WINDOW_NAMES[:-1]) + " or " + WINDOW_NAMES[-1]
    return None


def _window(value: str) -> str:
    from worker.policy.presets import canonical_window_name

    return canonical_window_name(value) or value


RESEND_MODES = ("false", "true", "after_grace")


def _resend_normalise(value: str) -> str:
    word = value.strip().lower()
    if word in _TRUE:
        return "true"
    if word in _FALSE:
        return "false"
    return word


def _resend_mode(value: str) -> str | None:
    if _resend_normalise(value) not in RESEND_MODES:
        return "must be false, true or after_grace"
    return None


def _webhook_secret(value: str) -> str | None:
    # The form Svix hands out: "whsec_" and base64. Checked here so that a bad secret stops
    # start-up with the other problems instead of failing every delivery. Never echoed.
    body = value.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return "must be the signing secret Levers shows (whsec_ and base64)"
    if len(key) < 16:
        return "is too short to be a signing secret (at least 16 bytes once decoded)"
    return None


def _lower(value: str) -> str:
    return value.lower()


def _upper(value: str) -> str:
    return value.upper()


def _no_trailing_slash(value: str) -> str:
    return value.rstrip("/")


def _lower_list(value: str) -> str:
    return ",".join(part.strip().lower() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    """Every knob of levers-batcher, with its unit in the name or the doc."""

    # -- connections -----------------------------------------------------------------------
    redis_url: str = env(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis for broker and state; with REDIS_SENTINELS its host is not used (its database, "
        "rediss:// and password still are)",
        check=redis_url_problem,
        sensitive=True,  # may hold a password
    )
    redis_sentinels: str | None = env(
        "REDIS_SENTINELS",
        None,
        "Sentinels as host:port,host:port; the primary is found through them",
        kind=str,
        check=_sentinels,
    )
    redis_sentinel_master: str = env(
        "REDIS_SENTINEL_MASTER", "levers", "the name the sentinels know the primary by"
    )
    redis_password: str | None = env(
        "REDIS_PASSWORD",
        None,
        "password of the Redis primary and replicas (with sentinels; or put it in REDIS_URL)",
        kind=str,
        secret=True,
    )
    redis_sentinel_password: str | None = env(
        "REDIS_SENTINEL_PASSWORD",
        None,
        "password of the sentinels themselves",
        kind=str,
        secret=True,
    )
    redis_min_replicas: int = env(
        "LEVERS_REDIS_MIN_REPLICAS",
        0,
        "replicas that must have a producer's enqueue, an append and a batch's `sending` "
        "mark before it counts (Redis WAIT; see worker/durability.py); 0 = do not wait",
        low=0,
        high=10,
    )
    redis_wait_timeout_ms: int = env(
        "LEVERS_REDIS_WAIT_TIMEOUT_MS",
        1000,
        "how long a write waits for LEVERS_REDIS_MIN_REPLICAS, ms",
        low=1,
        high=60_000,
    )
    namespace: str = env(
        "LEVERS_NAMESPACE",
        "levers",
        "prefix of every Redis key, dramatiq's included",
        check=_namespace,
    )
    base_url: str = env(
        "LEVERS_BASE_URL",
        "https://api.dev.uselevers.com",
        "Levers API host",
        check=_http_url,
        normalise=_no_trailing_slash,
    )
    client_id: str | None = env("LEVERS_CLIENT_ID", None, "client id for Levers' JWT", kind=str)
    client_secret: str | None = env(
        "LEVERS_CLIENT_SECRET", None, "client secret for Levers' JWT", kind=str, secret=True
    )
    api_token: str | None = env(
        "LEVERS_API_TOKEN",
        None,
        "a ready bearer token instead of client credentials",
        kind=str,
        secret=True,
    )
    # -- batching --------------------------------------------------------------------------
    batch_max_size: int = env(
        "LEVERS_BATCH_MAX_SIZE", 100, "contacts per request", low=1, high=10_000
    )
    batch_max_wait_seconds: float = env(
        "LEVERS_BATCH_MAX_WAIT_SECONDS",
        2.0,
        "longest a contact waits for its batch to fill, s",
        low=0.05,
        high=86_400,
    )
    dedupe_window_seconds: int = env(
        "LEVERS_DEDUPE_WINDOW_SECONDS",
        3600,
        "same number + batch key within this is dropped as a duplicate, s (0 = off)",
        low=0,
        high=365 * 86400,
    )
    default_region: str | None = env(
        "LEVERS_DEFAULT_REGION",
        None,
        "region for numbers not in +E.164 form (none: such numbers are rejected)",
        kind=str,
        check=_region,
        normalise=_upper,
    )
    allowed_number_types: str = env(
        "LEVERS_ALLOWED_NUMBER_TYPES",
        "mobile,fixed_line,fixed_line_or_mobile",
        "number types that may be called (phonenumbers' names, comma-separated)",
        check=_number_types,
        normalise=_lower_list,
    )
    max_backlog_bytes: int = env(
        "LEVERS_MAX_BACKLOG_BYTES",
        0,
        "Redis memory above which producers are refused (retryable), bytes; 0 = 80 % of "
        "Redis maxmemory when that is set, else no limit",
        low=0,
        high=2**50,
    )
    # -- calling policy --------------------------------------------------------------------
    policy_file: str | None = env(
        "LEVERS_POLICY_FILE",
        None,
        "TOML calling policy: windows per template and country, frequency caps "
        "(docs/calling-hours.md); read once at start-up",
        kind=str,
    )
    default_window: str = env(
        "LEVERS_DEFAULT_WINDOW",
        "by_country",
        "calling window of every template when there is no LEVERS_POLICY_FILE: by_country, "
        "always, or a preset (SA, AE, US, GB)",
        check=_window_name,
        normalise=_window,
    )
    import_retention_seconds: int = env(
        "LEVERS_IMPORT_RETENTION_SECONDS",
        30 * 86400,
        "how long levers-enqueue remembers a file it imported (to resume it, or to refuse "
        "importing it twice), s",
        low=3600,
        high=3650 * 86400,
    )
    # -- rate limits -----------------------------------------------------------------------
    max_requests_per_second: float = env(
        "LEVERS_MAX_REQUESTS_PER_SECOND",
        5.0,
        "global request rate, all replicas together",
        low=0.01,
        high=10_000,
    )
    max_contacts_per_minute: int = env(
        "LEVERS_MAX_CONTACTS_PER_MINUTE",
        0,
        "global contact rate (0 = no limit)",
        low=0,
        high=10**9,
    )
    adaptive_rate: bool = env(
        "LEVERS_ADAPTIVE_RATE",
        False,
        "find an unknown rate limit: AIMD between the floor and LEVERS_MAX_REQUESTS_PER_SECOND",
    )
    adaptive_min_requests_per_second: float = env(
        "LEVERS_ADAPTIVE_MIN_REQUESTS_PER_SECOND",
        0.5,
        "adaptive floor, requests/s",
        low=0.01,
        high=10_000,
    )
    adaptive_step: float = env(
        "LEVERS_ADAPTIVE_STEP",
        0.05,
        "requests/s added per success with stable latency (adaptive mode)",
        low=0.001,
        high=100,
    )
    max_in_flight: int = env(
        "LEVERS_MAX_IN_FLIGHT",
        10,
        "requests on the wire at once, all replicas together (0 = no cap)",
        low=0,
        high=10_000,
    )
    rate_jitter_ms: float = env(
        "LEVERS_RATE_JITTER_MS",
        40.0,
        "arrival jitter the request spacing tolerates per second, ms",
        low=0,
        high=500,
    )
    # -- sending ---------------------------------------------------------------------------
    connect_timeout_seconds: float = env(
        "LEVERS_CONNECT_TIMEOUT_SECONDS",
        5.0,
        "HTTP connect timeout to Levers, s",
        low=0.1,
        high=600,
    )
    request_timeout_seconds: float = env(
        "LEVERS_REQUEST_TIMEOUT_SECONDS",
        30.0,
        "HTTP read/write timeout to Levers, s",
        low=0.1,
        high=3600,
    )
    max_send_retries: int = env(
        "LEVERS_MAX_SEND_RETRIES",
        8,
        "attempts of a batch after a 502/503/504, a refused connection or an auth failure "
        "(429s do not count)",
        low=0,
        high=1000,
    )
    max_retry_seconds: float = env(
        "LEVERS_MAX_RETRY_SECONDS",
        3600.0,
        "a batch still failing this long after its first attempt is dead-lettered, s",
        low=1,
        high=7 * 86400,
    )
    send_lease_seconds: float = env(
        "LEVERS_SEND_LEASE_SECONDS",
        120.0,
        "how long a send attempt owns its batch; after that it is an unknown outcome, s",
        low=1,
        high=86_400,
    )
    resend_unknown: str = env(
        "LEVERS_RESEND_UNKNOWN",
        "false",
        "a batch whose outcome is unknown: false = dead-letter it for an operator; true = "
        "resend it at once; after_grace = dead-letter it, settle each contact by its call-ended "
        "event, and resend those with no event after LEVERS_OUTCOME_GRACE_SECONDS",
        check=_resend_mode,
        normalise=_resend_normalise,
    )
    batch_retention_seconds: int = env(
        "LEVERS_BATCH_RETENTION_SECONDS",
        86400,
        "how long finished batch records are kept, s",
        low=60,
        high=365 * 86400,
    )
    dead_letter_retention_seconds: int = env(
        "LEVERS_DEAD_LETTER_RETENTION_SECONDS",
        30 * 86400,
        "how long dead letters are kept for replay or purge, s",
        low=60,
        high=3650 * 86400,
    )
    # -- call outcomes ---------------------------------------------------------------------
    webhook_secret: str | None = env(
        "LEVERS_WEBHOOK_SECRET",
        None,
        "signing secret of Levers' webhooks (whsec_...); without it levers-ingest answers "
        "POST /v1/webhooks/levers with 503",
        kind=str,
        check=_webhook_secret,
        secret=True,
    )
    webhook_dedupe_seconds: int = env(
        "LEVERS_WEBHOOK_DEDUPE_SECONDS",
        3 * 86400,
        "how long a webhook delivery id is remembered so that a duplicate or replayed delivery "
        "does nothing, s (Svix retries a delivery for about 27.6 h)",
        low=3600,
        high=90 * 86400,
    )
    outcome_retention_seconds: int = env(
        "LEVERS_OUTCOME_RETENTION_SECONDS",
        7 * 86400,
        "how long call outcomes, events that match no contact, and the copies of contacts kept "
        "for retries are kept, s",
        low=3600,
        high=365 * 86400,
    )
    outcome_grace_seconds: int = env(
        "LEVERS_OUTCOME_GRACE_SECONDS",
        7200,
        "with LEVERS_RESEND_UNKNOWN=after_grace, how long after an unknown outcome a contact "
        "without a call-ended event is resent, s",
        low=60,
        high=30 * 86400,
    )
    callback_secret: str | None = env(
        "LEVERS_CALLBACK_SECRET",
        None,
        "signing secret (whsec_...) of the outcome callbacks sent to producers' URLs; needed "
        "when the policy names a callback url",
        kind=str,
        check=_webhook_secret,
        secret=True,
    )
    callback_max_attempts: int = env(
        "LEVERS_CALLBACK_MAX_ATTEMPTS",
        8,
        "attempts of an outcome callback before it is dead-lettered",
        low=1,
        high=100,
    )
    callback_backoff_seconds: float = env(
        "LEVERS_CALLBACK_BACKOFF_SECONDS",
        10.0,
        "first wait between callback attempts, s; doubled each attempt (with jitter), at most 1 h",
        low=0.01,
        high=3600,
    )
    callback_timeout_seconds: float = env(
        "LEVERS_CALLBACK_TIMEOUT_SECONDS",
        10.0,
        "connect and read timeout of one outcome callback, s",
        low=0.1,
        high=300,
    )
    # -- dramatiq --------------------------------------------------------------------------
    worker_timeout_ms: int = env(
        "LEVERS_WORKER_TIMEOUT_MS",
        100,
        "how often an idle consumer polls Redis (bounds pickup latency), ms",
        low=10,
        high=60_000,
    )
    contacts_prefetch: int = env(
        "LEVERS_CONTACTS_PREFETCH",
        32,
        "contact messages a worker process fetches ahead; a killed process holds this many "
        "(up to 50 contacts each) until its heartbeat times out",
        low=1,
        high=65535,
    )
    heartbeat_timeout_ms: int = env(
        "LEVERS_HEARTBEAT_TIMEOUT_MS",
        15_000,
        "after this silence a worker is presumed dead and its messages requeued, ms",
        low=1_000,
        high=3_600_000,
    )
    maintenance_chance: int = env(
        "LEVERS_MAINTENANCE_CHANCE",
        10_000,
        "per million broker commands, how many run the pass that requeues a dead worker's messages",
        low=1,
        high=1_000_000,
    )
    # -- HTTP ingest (levers-ingest) ------------------------------------------------------
    ingest_host: str = env(
        "LEVERS_INGEST_HOST",
        "127.0.0.1",
        "address levers-ingest listens on (0.0.0.0 in a container, behind TLS)",
    )
    ingest_port: int = env(
        "LEVERS_INGEST_PORT", 8088, "port levers-ingest listens on", low=1, high=65535
    )
    ingest_tokens: str | None = env(
        "LEVERS_INGEST_TOKENS",
        None,
        "bearer tokens that may POST /v1/contacts, separated by commas (several for rotation)",
        kind=str,
        check=_tokens,
        secret=True,
    )
    ingest_insecure_no_auth: bool = env(
        "LEVERS_INGEST_INSECURE_NO_AUTH",
        False,
        "let levers-ingest run without LEVERS_INGEST_TOKENS, accepting anyone (local demos only)",
    )
    ingest_max_contacts: int = env(
        "LEVERS_INGEST_MAX_CONTACTS",
        1000,
        "contacts one POST /v1/contacts may carry",
        low=1,
        high=100_000,
    )
    ingest_max_body_bytes: int = env(
        "LEVERS_INGEST_MAX_BODY_BYTES",
        4 * 1024 * 1024,
        "largest request body levers-ingest reads, bytes (larger: 413)",
        low=1024,
        high=256 * 1024 * 1024,
    )
    ingest_idempotency_seconds: int = env(
        "LEVERS_INGEST_IDEMPOTENCY_SECONDS",
        86400,
        "how long the answer to a POST with an Idempotency-Key is kept for its retries, s",
        low=60,
        high=30 * 86400,
    )
    # -- operator console (/console on levers-ingest) -----------------------------------------
    console_users: str | None = env(
        "LEVERS_CONSOLE_USERS",
        None,
        "who may open /console: name:scrypt-hash entries separated by commas (hash from "
        "`levers-admin console-password NAME`); unset = no console",
        kind=str,
        check=_console_users,
        secret=True,
    )
    console_tokens: str | None = env(
        "LEVERS_CONSOLE_TOKENS",
        None,
        "console tokens, separated by commas: each opens /console as `token#N` (its place in "
        "the list) from the login page's token form; never one of LEVERS_INGEST_TOKENS",
        kind=str,
        check=_tokens,
        secret=True,
    )
    console_reveal_users: str = env(
        "LEVERS_CONSOLE_REVEAL_USERS",
        "",
        "console users who may ask to see a whole phone number (each time recorded in the "
        "audit), separated by commas; everyone else sees them masked",
    )
    console_session_seconds: int = env(
        "LEVERS_CONSOLE_SESSION_SECONDS",
        8 * 3600,
        "how long a console login lasts without a new login, s",
        low=60,
        high=7 * 86400,
    )
    # -- operations ------------------------------------------------------------------------
    metrics_port: int = env(
        "LEVERS_METRICS_PORT",
        9191,
        "port of levers-worker's /metrics, /healthz and /readyz (0 = off)",
        low=0,
        high=65535,
    )
    metrics_max_outcome_labels: int = env(
        "LEVERS_METRICS_MAX_OUTCOME_LABELS",
        20,
        "distinct call outputs (and ended reasons) shown as metric labels; the rest fold into "
        "`other`",
        low=1,
        high=1000,
    )
    metrics_max_batch_keys: int = env(
        "LEVERS_METRICS_MAX_BATCH_KEYS",
        20,
        "distinct batch keys shown as metric labels; the rest fold into `other`",
        low=1,
        high=1000,
    )
    log_level: str = env(
        "LEVERS_LOG_LEVEL",
        "INFO",
        "DEBUG, INFO, WARNING or ERROR",
        check=_one_of("debug", "info", "warning", "error"),
        normalise=_upper,
    )
    log_format: str = env(
        "LEVERS_LOG_FORMAT",
        "text",
        "text (key=value) or json",
        check=_one_of("text", "json"),
        normalise=_lower,
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: `os.environ`), one error for all faults."""
        source = os.environ if environ is None else environ
        errors: list[str] = []
        values = {f.name: _read(f, source, errors) for f in fields(cls)}
        if _raw(source, "LEVERS_POLICY_FILE") and _raw(source, "LEVERS_DEFAULT_WINDOW"):
            errors.append(
                "LEVERS_POLICY_FILE and LEVERS_DEFAULT_WINDOW: set one, not both (the file's "
                "[default] names the default window)"
            )
        shared = set(split_tokens(values.get("console_tokens") or "")) & set(
            split_tokens(values.get("ingest_tokens") or "")
        )
        if shared:
            errors.append(
                "LEVERS_CONSOLE_TOKENS: a console token must not be one of LEVERS_INGEST_TOKENS "
                "(a producer's token would open the operators' console)"
            )
        if errors:
            raise SettingsError(errors)
        return cls(**values)

    @property
    def resend_unknown_at_once(self) -> bool:
        """LEVERS_RESEND_UNKNOWN=true: the sender resends an unknown outcome like a 503."""
        return self.resend_unknown == "true"

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_token or (self.client_id and self.client_secret))

    @property
    def contact_rules(self) -> ContactRules:
        return ContactRules(self.default_region, frozenset(self.allowed_number_types.split(",")))

    @property
    def ingest_token_list(self) -> list[str]:
        return split_tokens(self.ingest_tokens or "")

    @property
    def console_token_list(self) -> list[str]:
        return split_tokens(self.console_tokens or "")

    @property
    def console_enabled(self) -> bool:
        return bool(self.console_users or self.console_tokens)

    @property
    def console_reveal_list(self) -> frozenset[str]:
        return frozenset(split_tokens(self.console_reveal_users))

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        out = []
        for item in (self.redis_sentinels or "").split(","):
            if item.strip():
                host, _, port = item.strip().rpartition(":")
                out.append((host, int(port)))
        return out


def declared() -> Iterator[Field[Any]]:
    """Every setting's field, in declaration order (its metadata names the variable)."""
    yield from fields(Settings)


def variable(name: str) -> str:
    """The environment variable of the Settings attribute `name`."""
    return str(Settings.__dataclass_fields__[name].metadata["env"])


def settings_or_exit(environ: Mapping[str, str] | None = None, prog: str = "") -> Settings:
    """For commands: the settings, or every problem on stderr (after `prog: `) and exit 2."""
    try:
        return Settings.from_env(environ)
    except SettingsError as exc:
        print(f"{prog}: {exc}" if prog else exc, file=sys.stderr)
        raise SystemExit(2) from None


def _raw(source: Mapping[str, str], name: str) -> str | None:
    value = source.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _read(f: Field[Any], source: Mapping[str, str], errors: list[str]) -> Any:
    meta = f.metadata
    name: str = meta["env"]
    raw = _secret(name, source, errors) if meta["secret"] else _raw(source, name)
    if raw is None:
        return f.default
    # A secret's value is never echoed in an error: it may be the secret itself.
    shown = name if meta["secret"] else f"{name}={raw!r}"
    kind = meta["kind"]
    if kind is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        errors.append(f"{shown}: not a boolean (true/false)")
        return f.default
    if kind in (int, float):
        try:
            parsed = kind(raw)
        except ValueError:
            errors.append(f"{shown}: not a{'n' if kind is int else ''} {kind.__name__}")
            return f.default
        low, high = meta["low"], meta["high"]
        if not math.isfinite(parsed) or not (low <= parsed <= high):
            errors.append(f"{shown}: must be between {_plain(low)} and {_plain(high)}")
            return f.default
        return parsed
    problem = meta["check"](raw) if meta["check"] else None
    if problem:
        errors.append(f"{shown}: {problem}")
        return f.default
    return meta["normalise"](raw) if meta["normalise"] else raw


def _plain(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _secret(name: str, source: Mapping[str, str], errors: list[str]) -> str | None:
    """A secret from `NAME`, or from the file named by `NAME_FILE`."""
    direct = _raw(source, name)
    path = _raw(source, f"{name}_FILE")
    if direct and path:
        errors.append(f"{name} and {name}_FILE: set one, not both")
        return None
    if path is None:
        return direct
    try:
        content = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        # The path is not echoed either: it may be the secret itself, put here by mistake.
        errors.append(f"{name}_FILE: cannot read that file ({exc.strerror})")
        return None
    if not content:
        errors.append(f"{name}_FILE: the file is empty")
        return None
    return content
