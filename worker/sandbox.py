"""levers-sandbox: a local stand-in for the Levers API.

A real HTTP server (stdlib `http.server`, HTTP/1.1 with keep-alive) that behaves the way Levers
documents its API, so a staging worker, a demo or an integration test can point
`LEVERS_BASE_URL` at it and count what was sent:

    POST /auth/v1/api-key/auth                                {"clientId", "clientSecret"}
        200 {"access_token": "<HS256 JWT with sub, iat, exp>"} · 401 bad credentials · 422
    POST /api-service/v1/ai/phone-calls/action/call-bulk      Authorization: Bearer <JWT>
        401 no/foreign/expired token
        429 over `rate_limit_per_second` in a sliding 1 s window, or at random (`rate_429`)
        422 body invalid, in FastAPI's shape, every error at once
        503 at random (`fail_rate`)
        then, after `latency_seconds`, the request is recorded as accepted and answered 201 {},
        or (`drop_rate`) the connection is closed without any answer.

Control endpoints, which Levers does not have:

    GET    /_sandbox/requests   every accepted request, in arrival order
    DELETE /_sandbox/requests   forget accepted requests and answer statistics (204)
    GET    /_sandbox/stats      accepted counts, answers per status, [received_at, status] each
    POST   /_sandbox/config     change SandboxConfig fields at runtime; answers the new config

In Python, `Sandbox(SandboxConfig(...)).start()` serves on a free port in a daemon thread and
offers the same controls as methods. `levers-sandbox` (see `main`) serves until SIGINT/SIGTERM.

With a webhook URL and secret (`Sandbox(..., webhooks=WebhookConfig(...))`, or `--webhook-url`
and `--webhook-secret`), it also sends Levers' signed `phone_call.ended` webhook for every
contact of every request it accepted: see worker/sandbox_webhooks.py.

A dropped answer is logged with status 0 (`DROPPED`) and counted under "dropped" in the stats.
The bulk endpoint's 429s, 503s and drops only ever follow a valid token, so a client that
authenticates badly sees 401s and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hmac
import json
import math
import random
import re
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, NamedTuple, cast

import jwt
import phonenumbers

from worker.sandbox_webhooks import OUTCOMES, WebhookConfig, WebhookSender, parse_mix

AUTH_PATH = "/auth/v1/api-key/auth"
BULK_PATH = "/api-service/v1/ai/phone-calls/action/call-bulk"
REQUESTS_PATH = "/_sandbox/requests"
STATS_PATH = "/_sandbox/stats"
CONFIG_PATH = "/_sandbox/config"

DROPPED = 0
"""Status logged for a request that was accepted and then answered by closing the connection."""

MAX_CONTACTS = 10_000
MIN_BATCH_SIZE = 10
MAX_BATCH_SIZE = 1000
MAX_BODY_BYTES = 32 * 1024 * 1024
# Idle keep-alive connections from vanished clients must not hold a thread forever.
CONNECTION_IDLE_TIMEOUT_SECONDS = 60.0
# How often the serving thread looks for stop(); the default 0.5 s makes every stop that slow.
SHUTDOWN_POLL_SECONDS = 0.05

_JWT_ALGORITHM = "HS256"
_E164 = re.compile(r"\+[0-9]{8,15}")  # [0-9], not \d: \d also matches non-ASCII digits
_CONTACT_FIELDS = frozenset({"numberToCall", "firstName", "lastName", "metadata", "promptTags"})
_BULK_FIELDS = frozenset(
    {"contacts", "aiSettingsTemplateId", "updateExisting", "countryCode", "batchSize"}
)

JSONObject = dict[str, Any]
ValidationError = dict[str, Any]
Loc = tuple[str | int, ...]
Clock = Callable[[], float]


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves. Times are in seconds, rates are fractions of bulk requests."""

    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    token_ttl_seconds: float = 3600.0
    """JWT `exp` = issue time + this. Negative issues tokens that are already expired."""
    rate_limit_per_second: float = 0.0
    """0 = off. Bulk requests beyond this many in any sliding 1 s window get 429. Below 1, one
    request per 1/rate seconds."""
    retry_after_seconds: float = 1.0
    """`Retry-After` of every 429, sent as whole seconds rounded up, at least 1."""
    fail_rate: float = 0.0
    """Fraction of valid bulk requests answered 503 and not recorded."""
    rate_429: float = 0.0
    """Fraction of authenticated bulk requests answered 429 at random."""
    drop_rate: float = 0.0
    """Fraction of accepted (recorded) bulk requests whose connection is closed unanswered."""
    latency_seconds: float = 0.0
    """Added before answering each bulk request that is accepted."""
    reject_numbers: frozenset[str] = frozenset()
    """Valid E.164 numbers answered 422 anyway, as if Levers refused them."""
    seed: int | None = None
    """Seed for the random choices; None seeds from the OS."""

    def __post_init__(self) -> None:
        # Tolerate any iterable (a list from JSON, a set from a caller) but store a frozenset.
        object.__setattr__(self, "reject_numbers", frozenset(self.reject_numbers))
        problems = config_problems(self.values())
        if problems:
            raise ValueError("; ".join(f"{name} {msg}" for name, msg in problems.items()))

    def values(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def to_json(self) -> JSONObject:
        return {**self.values(), "reject_numbers": sorted(self.reject_numbers)}


_FRACTION_FIELDS = ("fail_rate", "rate_429", "drop_rate")
_NON_NEGATIVE_FIELDS = ("rate_limit_per_second", "retry_after_seconds", "latency_seconds")


def config_problems(values: dict[str, Any]) -> dict[str, str]:
    """Every out-of-range value among SandboxConfig field `values`, by field name."""
    problems: dict[str, str] = {}
    for name in _FRACTION_FIELDS:
        if not 0.0 <= values[name] <= 1.0:
            problems[name] = "must be between 0 and 1"
    for name in _NON_NEGATIVE_FIELDS:
        if not (values[name] >= 0.0 and math.isfinite(values[name])):
            problems[name] = "must be a finite number >= 0"
    if not math.isfinite(values["token_ttl_seconds"]):
        problems["token_ttl_seconds"] = "must be a finite number"
    return problems


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_optional_int(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# Field -> (accepts the JSON value, pydantic error type, message), for POST /_sandbox/config.
_CONFIG_JSON_TYPES: dict[str, tuple[Callable[[object], bool], str, str]] = {
    "client_id": (_is_str, "string_type", "Input should be a valid string"),
    "client_secret": (_is_str, "string_type", "Input should be a valid string"),
    "token_ttl_seconds": (_is_number, "float_type", "Input should be a valid number"),
    **{
        name: (_is_number, "float_type", "Input should be a valid number")
        for name in (*_FRACTION_FIELDS, *_NON_NEGATIVE_FIELDS)
    },
    "reject_numbers": (_is_str_list, "list_type", "Input should be a valid list of strings"),
    "seed": (_is_optional_int, "int_type", "Input should be a valid integer"),
}


def _config_changes_from_json(
    data: object, current: SandboxConfig
) -> tuple[dict[str, Any], list[ValidationError]]:
    """Check a JSON config patch the way FastAPI would: every error at once, nothing applied."""
    if not isinstance(data, dict):
        return {}, [_dict_error(("body",))]
    errors: list[ValidationError] = []
    for name, value in data.items():
        if name not in _CONFIG_JSON_TYPES:
            errors.append(_extra_error(("body", name)))
            continue
        accepts, type_, msg = _CONFIG_JSON_TYPES[name]
        if not accepts(value):
            errors.append(_error(("body", name), type_, msg))
    if errors:
        return {}, errors
    problems = config_problems({**current.values(), **data})
    errors = [
        _error(("body", name), "value_error", f"Value error, {name} {msg}")
        for name, msg in problems.items()
    ]
    return data, errors


# --- what the sandbox records ----------------------------------------------------------------


@dataclass(frozen=True)
class AcceptedRequest:
    received_at: float
    """time.time() when the request arrived."""
    body: dict[str, Any]
    """The parsed JSON body as received."""
    dropped: bool = False
    """True when the connection was closed instead of answering 201 (`drop_rate`)."""


@dataclass(frozen=True)
class Answer:
    """One bulk request and the status it got (`DROPPED` when it got none)."""

    received_at: float
    status: int


@dataclass(frozen=True)
class SandboxStats:
    accepted_requests: int
    accepted_contacts: int
    statuses: dict[str, int]
    """Answers per status code ("201", "429", ...); drops are counted under "dropped"."""
    answers: list[Answer]

    def to_json(self) -> JSONObject:
        return {
            "accepted_requests": self.accepted_requests,
            "accepted_contacts": self.accepted_contacts,
            "statuses": self.statuses,
            "answers": [[a.received_at, a.status] for a in self.answers],
        }


def _status_label(status: int) -> str:
    return "dropped" if status == DROPPED else str(status)


# --- request validation, as FastAPI/pydantic would answer ------------------------------------


def _error(loc: Loc, type_: str, msg: str) -> ValidationError:
    return {"type": type_, "loc": list(loc), "msg": msg}


def _missing_error(loc: Loc) -> ValidationError:
    return _error(loc, "missing", "Field required")


def _extra_error(loc: Loc) -> ValidationError:
    return _error(loc, "extra_forbidden", "Extra inputs are not permitted")


def _dict_error(loc: Loc) -> ValidationError:
    return _error(loc, "dict_type", "Input should be a valid dictionary")


def _check_str(value: object, loc: Loc) -> list[ValidationError]:
    if isinstance(value, str):
        return []
    return [_error(loc, "string_type", "Input should be a valid string")]


def _check_bool(value: object, loc: Loc) -> list[ValidationError]:
    # Stricter than pydantic's lax mode ("true", 1): our worker must send real booleans.
    if isinstance(value, bool):
        return []
    return [_error(loc, "bool_type", "Input should be a valid boolean")]


def _check_object(value: object, loc: Loc) -> list[ValidationError]:
    return [] if isinstance(value, dict) else [_dict_error(loc)]


def _check_uuid(value: object, loc: Loc) -> list[ValidationError]:
    if not isinstance(value, str):
        return [_error(loc, "uuid_type", "UUID input should be a string, bytes or UUID object")]
    try:
        uuid.UUID(value)
    except ValueError:
        return [_error(loc, "uuid_parsing", "Input should be a valid UUID")]
    return []


def _check_batch_size(value: object, loc: Loc) -> list[ValidationError]:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not float(value).is_integer()
    ):
        return [_error(loc, "int_type", "Input should be a valid integer")]
    if value < MIN_BATCH_SIZE:
        msg = f"Input should be greater than or equal to {MIN_BATCH_SIZE}"
        return [_error(loc, "greater_than_equal", msg)]
    if value > MAX_BATCH_SIZE:
        msg = f"Input should be less than or equal to {MAX_BATCH_SIZE}"
        return [_error(loc, "less_than_equal", msg)]
    return []


def _check_prompt_tags(value: object, loc: Loc) -> list[ValidationError]:
    if not isinstance(value, dict):
        return [_dict_error(loc)]
    errors: list[ValidationError] = []
    for tag, tag_value in value.items():
        errors += _check_str(tag_value, (*loc, tag))
    return errors


def is_valid_e164(number: str) -> bool:
    """`+` and 8..15 digits, and a number that exists in its country's numbering plan."""
    if not _E164.fullmatch(number):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        return False


def _check_number(value: object, loc: Loc, refused: frozenset[str]) -> list[ValidationError]:
    if not isinstance(value, str):
        return _check_str(value, loc)
    if not is_valid_e164(value):
        msg = "Value error, numberToCall must be a valid phone number in E.164 form"
        return [_error(loc, "value_error", msg)]
    if value in refused:
        return [_error(loc, "value_error", "number refused by the sandbox")]
    return []


_Checker = Callable[[object, Loc], list[ValidationError]]
_CONTACT_OPTIONAL: dict[str, _Checker] = {
    "firstName": _check_str,
    "lastName": _check_str,
    "metadata": _check_object,
    "promptTags": _check_prompt_tags,
}
_BULK_OPTIONAL: dict[str, _Checker] = {
    "aiSettingsTemplateId": _check_uuid,
    "updateExisting": _check_bool,
    "countryCode": _check_str,
    "batchSize": _check_batch_size,
}


def _check_optional(
    data: dict[str, Any], checkers: dict[str, _Checker], loc: Loc
) -> list[ValidationError]:
    errors: list[ValidationError] = []
    for name, check in checkers.items():
        if data.get(name) is not None:
            errors += check(data[name], (*loc, name))
    return errors


def _check_extras(data: dict[str, Any], allowed: frozenset[str], loc: Loc) -> list[ValidationError]:
    return [_extra_error((*loc, key)) for key in data if key not in allowed]


def _check_contact(value: object, loc: Loc, refused: frozenset[str]) -> list[ValidationError]:
    if not isinstance(value, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [_error(loc, "model_attributes_type", msg)]
    errors: list[ValidationError] = []
    if "numberToCall" in value:
        errors += _check_number(value["numberToCall"], (*loc, "numberToCall"), refused)
    else:
        errors.append(_missing_error((*loc, "numberToCall")))
    errors += _check_optional(value, _CONTACT_OPTIONAL, loc)
    errors += _check_extras(value, _CONTACT_FIELDS, loc)
    return errors


def _check_contacts(body: dict[str, Any], refused: frozenset[str]) -> list[ValidationError]:
    loc: Loc = ("body", "contacts")
    if "contacts" not in body:
        return [_missing_error(loc)]
    contacts = body["contacts"]
    if not isinstance(contacts, list):
        return [_error(loc, "list_type", "Input should be a valid list")]
    if not contacts:
        msg = "List should have at least 1 item after validation, not 0"
        return [_error(loc, "too_short", msg)]
    if len(contacts) > MAX_CONTACTS:
        msg = f"List should have at most {MAX_CONTACTS} items after validation, not {len(contacts)}"
        return [_error(loc, "too_long", msg)]
    errors: list[ValidationError] = []
    for index, contact in enumerate(contacts):
        errors += _check_contact(contact, (*loc, index), refused)
    return errors


def validate_bulk_body(
    body: object, refused: frozenset[str] = frozenset()
) -> list[ValidationError]:
    """Every validation error of a call-bulk body, FastAPI-shaped; empty when it is valid."""
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [_error(("body",), "model_attributes_type", msg)]
    return [
        *_check_contacts(body, refused),
        *_check_optional(body, _BULK_OPTIONAL, ("body",)),
        *_check_extras(body, _BULK_FIELDS, ("body",)),
    ]


def _validate_auth_body(body: object) -> list[ValidationError]:
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [_error(("body",), "model_attributes_type", msg)]
    errors: list[ValidationError] = []
    for name in ("clientId", "clientSecret"):
        if name in body:
            errors += _check_str(body[name], ("body", name))
        else:
            errors.append(_missing_error(("body", name)))
    return errors


# --- behaviour, independent of HTTP ----------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    status: int
    body: object = None
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False
    """Close the connection without writing anything."""


def _detail(status: int, detail: object, *headers: tuple[str, str]) -> _Reply:
    return _Reply(status, {"detail": detail}, headers)


def _parse_json(raw: bytes) -> tuple[object, _Reply | None]:
    if not raw:
        return None, _detail(422, [_missing_error(("body",))])
    try:
        return json.loads(raw), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        position = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
        return None, _detail(422, [_error(("body", position), "json_invalid", "JSON decode error")])


class _Dice(NamedTuple):
    """The random (and rate-limit) fate of one bulk request, decided when it arrives."""

    answer_429: bool
    answer_503: bool
    drop: bool


def _bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class _State:
    """Everything the sandbox knows, shared by the handler threads under one lock.

    One clock serves `received_at`, token expiry and the rate-limit window, so the logged
    answers line up with the limiter's decisions and tests can move time instead of sleeping.
    """

    def __init__(
        self,
        config: SandboxConfig,
        clock: Clock,
        on_accept: Callable[[JSONObject], None] | None = None,
    ) -> None:
        self._on_accept = on_accept  # the webhooks of the calls an accepted request places
        self._lock = threading.Lock()
        self._config = config
        self._clock = clock
        self._random = random.Random(config.seed)
        self._jwt_secret = secrets.token_hex(32)  # per server: tokens of another sandbox fail
        self._accepted: list[AcceptedRequest] = []
        self._answers: list[Answer] = []
        self._window: deque[float] = deque()  # arrival times of requests the limiter let in
        self._throttle_next = 0  # this many next bulk requests get a 429, whatever the dice say

    @property
    def config(self) -> SandboxConfig:
        with self._lock:
            return self._config

    def configure(self, **changes: Any) -> SandboxConfig:
        with self._lock:
            self._config = dataclasses.replace(self._config, **changes)
            if "seed" in changes:
                self._random = random.Random(self._config.seed)
            return self._config

    def throttle_next(self, count: int) -> None:
        with self._lock:
            self._throttle_next = count

    def accepted(self) -> list[AcceptedRequest]:
        with self._lock:
            return list(self._accepted)

    def stats(self) -> SandboxStats:
        with self._lock:
            accepted = list(self._accepted)
            answers = list(self._answers)
        statuses = Counter(_status_label(answer.status) for answer in answers)
        return SandboxStats(
            accepted_requests=len(accepted),
            accepted_contacts=sum(len(request.body["contacts"]) for request in accepted),
            statuses=dict(sorted(statuses.items())),
            answers=answers,
        )

    def reset(self) -> None:
        with self._lock:
            self._accepted.clear()
            self._answers.clear()
            self._window.clear()

    # -- Levers endpoints --

    def authenticate(self, raw: bytes) -> _Reply:
        body, bad_json = _parse_json(raw)
        if bad_json is not None:
            return bad_json
        errors = _validate_auth_body(body)
        if errors:
            return _detail(422, errors)
        credentials = cast(JSONObject, body)
        config = self.config
        # compare_digest on both fields, so a wrong id and a wrong secret take the same time.
        id_ok = hmac.compare_digest(credentials["clientId"].encode(), config.client_id.encode())
        secret_ok = hmac.compare_digest(
            credentials["clientSecret"].encode(), config.client_secret.encode()
        )
        if not (id_ok and secret_ok):
            return _detail(401, "Invalid credentials")
        return _Reply(200, {"access_token": self._issue_token(config)})

    def call_bulk(self, authorization: str | None, raw: bytes) -> tuple[_Reply, int]:
        """The reply to a bulk request, and how many contacts it carried (for logging)."""
        received_at = self._clock()
        reply, contacts = self._decide_bulk(authorization, raw, received_at)
        with self._lock:
            self._answers.append(Answer(received_at, DROPPED if reply.drop else reply.status))
        return reply, contacts

    def _decide_bulk(
        self, authorization: str | None, raw: bytes, received_at: float
    ) -> tuple[_Reply, int]:
        token_problem = self._token_problem(_bearer_token(authorization), received_at)
        if token_problem is not None:
            return _detail(401, token_problem, ("WWW-Authenticate", "Bearer")), 0
        config, dice = self._admit(received_at)
        if dice.answer_429:
            retry_after = str(max(1, math.ceil(config.retry_after_seconds)))
            return _detail(429, "Too many requests", ("Retry-After", retry_after)), 0
        body, bad_json = _parse_json(raw)
        if bad_json is not None:
            return bad_json, 0
        errors = validate_bulk_body(body, config.reject_numbers)
        if errors:
            return _detail(422, errors), 0
        if dice.answer_503:
            return _detail(503, "Service unavailable"), 0
        accepted = AcceptedRequest(received_at, cast(JSONObject, body), dropped=dice.drop)
        if config.latency_seconds > 0:
            time.sleep(config.latency_seconds)
        with self._lock:
            self._accepted.append(accepted)
        if self._on_accept is not None:
            self._on_accept(accepted.body)
        contacts = len(accepted.body["contacts"])
        return (_Reply(0, drop=True) if dice.drop else _Reply(201, {})), contacts

    def _admit(self, now: float) -> tuple[SandboxConfig, _Dice]:
        """Apply the rate limit and roll every die at once, so one config governs the request."""
        with self._lock:
            config = self._config
            limited = self._over_rate_limit(config.rate_limit_per_second, now)
            if self._throttle_next > 0:
                self._throttle_next -= 1
                limited = True
            dice = _Dice(
                answer_429=limited or self._roll(config.rate_429),
                answer_503=self._roll(config.fail_rate),
                drop=self._roll(config.drop_rate),
            )
        return config, dice

    def _over_rate_limit(self, rate: float, now: float) -> bool:
        """Sliding window. Requests it turns away do not count, so a client that honours
        Retry-After gets through; requests it lets in count whatever their answer."""
        if rate <= 0:
            return False
        allowed = max(1, math.floor(rate))
        window = max(1.0, 1.0 / rate)
        while self._window and self._window[0] <= now - window:
            self._window.popleft()
        if len(self._window) >= allowed:
            return True
        self._window.append(now)
        return False

    def _roll(self, probability: float) -> bool:
        return probability > 0 and self._random.random() < probability

    # -- tokens --

    def _issue_token(self, config: SandboxConfig) -> str:
        now = self._clock()
        claims = {
            "sub": config.client_id,
            "iat": int(now),
            "exp": int(now + config.token_ttl_seconds),
        }
        return jwt.encode(claims, self._jwt_secret, algorithm=_JWT_ALGORITHM)

    def _token_problem(self, token: str | None, now: float) -> str | None:
        if token is None:
            return "Not authenticated"
        try:
            # Expiry is checked against our own clock, not PyJWT's, so tests can move time.
            claims = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=[_JWT_ALGORITHM],
                options={"verify_exp": False, "verify_iat": False, "require": ["exp", "sub"]},
            )
        except jwt.InvalidTokenError:
            return "Not authenticated"
        exp = claims["exp"]
        if not _is_number(exp):
            return "Not authenticated"
        return "Token expired" if exp <= now else None

    # -- control endpoints --

    def configure_from_json(self, raw: bytes) -> _Reply:
        data, bad_json = _parse_json(raw)
        if bad_json is not None:
            return bad_json
        changes, errors = _config_changes_from_json(data, self.config)
        if errors:
            return _detail(422, errors)
        return _Reply(200, self.configure(**changes).to_json())

    def requests_json(self) -> JSONObject:
        return {
            "requests": [
                {
                    "received_at": request.received_at,
                    "body": request.body,
                    "dropped": request.dropped,
                }
                for request in self.accepted()
            ]
        }


# --- HTTP ------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: _State, verbose: bool) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.state = state
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a sandboxed network.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
            if self._closing:
                _shutdown_socket(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """End keep-alive connections, whose threads would otherwise keep serving after stop."""
        with self._connections_lock:
            self._closing = True
            for connection in self._connections:
                _shutdown_socket(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away mid-answer; nothing to report
        super().handle_error(request, client_address)


def _shutdown_socket(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the client
        connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CONNECTION_IDLE_TIMEOUT_SECONDS
    # Headers and body go out in separate writes; with Nagle on, keep-alive answers stall ~40 ms.
    disable_nagle_algorithm = True

    @property
    def _server(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        self._server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server.untrack(self.connection)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        started = time.monotonic()
        path = self.path.partition("?")[0]
        raw = self._read_body()
        if isinstance(raw, _Reply):
            reply, contacts = raw, 0
        else:
            reply, contacts = self._route(method, path, raw)
        # Logged before sending, so the line is out by the time the client has its answer.
        if self._server.verbose:
            self._log_line(method, path, reply, contacts, time.monotonic() - started)
        self._send(reply)

    def _route(self, method: str, path: str, raw: bytes) -> tuple[_Reply, int]:
        state = self._server.state
        if path == BULK_PATH and method == "POST":
            return state.call_bulk(self.headers.get("Authorization"), raw)
        if path not in _ROUTES:
            return _detail(404, "Not Found"), 0
        action = _ROUTES[path].get(method)
        if action is None:
            return _detail(405, "Method Not Allowed"), 0
        return action(state, raw), 0

    def _read_body(self) -> bytes | _Reply:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # we cannot find the end of a body we do not read
            return _detail(411, "Length Required")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            return _detail(400, "Invalid Content-Length")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return _detail(413, "Request body too large")
        return self.rfile.read(length)

    def _send(self, reply: _Reply) -> None:
        if reply.drop:
            # Levers took the request but its answer never arrives: no status line, just EOF.
            self.close_connection = True
            return
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if reply.body is not None:
            self.send_header("Content-Type", "application/json")
        if reply.status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _log_line(
        self, method: str, path: str, reply: _Reply, contacts: int, seconds: float
    ) -> None:
        # Counts only: a log line never carries a phone number or a token.
        status = "dropped" if reply.drop else str(reply.status)
        extra = f" contacts={contacts}" if contacts else ""
        line = f"levers-sandbox {method} {path} {status}{extra} {seconds * 1000:.1f}ms"
        print(line, file=sys.stderr, flush=True)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # replaced by _log_line, which knows the outcome and hides request details

    def log_message(self, format: str, *args: Any) -> None:
        pass  # http.server's lines would echo raw request lines; stay quiet


def _reset(state: _State, raw: bytes) -> _Reply:
    state.reset()
    return _Reply(HTTPStatus.NO_CONTENT)


# Path -> method -> action. The bulk endpoint is routed apart: it needs the Authorization header.
_ROUTES: dict[str, dict[str, Callable[[_State, bytes], _Reply]]] = {
    AUTH_PATH: {"POST": _State.authenticate},
    BULK_PATH: {},
    REQUESTS_PATH: {
        "GET": lambda state, raw: _Reply(200, state.requests_json()),
        "DELETE": _reset,
    },
    STATS_PATH: {"GET": lambda state, raw: _Reply(200, state.stats().to_json())},
    CONFIG_PATH: {"POST": _State.configure_from_json},
}


# --- public object ---------------------------------------------------------------------------


class Sandbox:
    """The sandbox server. Use as a context manager, or `start()` / `stop()`."""

    def __init__(
        self,
        config: SandboxConfig = SandboxConfig(),
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
        clock: Clock = time.time,
        webhooks: WebhookConfig | None = None,
    ) -> None:
        self.webhooks = WebhookSender(webhooks or WebhookConfig(), clock)
        self._state = _State(config, clock, self.webhooks.on_accepted)
        self._address = (host, port)
        self._verbose = verbose
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Sandbox:
        """Bind (port 0 picks a free port) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        server = _Server(self._address, self._state, self._verbose)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="levers-sandbox",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        self.webhooks.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join()
        self.webhooks.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        host = self._address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._server.server_port}"

    @property
    def config(self) -> SandboxConfig:
        return self._state.config

    def configure(self, **changes: Any) -> None:
        """Replace config fields at runtime: TypeError for an unknown field, ValueError for a bad
        value. Changing `seed` restarts the random choices from it."""
        self._state.configure(**changes)

    def throttle_next(self, count: int = 1) -> None:
        """Answer the next `count` bulk requests 429 with `retry_after_seconds` (for tests)."""
        self._state.throttle_next(count)

    def accepted(self) -> list[AcceptedRequest]:
        return self._state.accepted()

    def stats(self) -> SandboxStats:
        return self._state.stats()

    def reset(self) -> None:
        """Forget accepted requests, answer statistics and the rate-limit window."""
        self._state.reset()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- command line ----------------------------------------------------------------------------


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not (value >= 0.0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number >= 0")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port (0 picks a free one)")
    return value


SANDBOX_ABOUT = (
    "A local stand-in for the Levers API, for demos, staging rehearsals and load tests: the "
    "auth endpoint issues JWTs, the bulk call endpoint validates bodies as Levers documents "
    "them and answers 201, and it can be told to rate-limit (429 with Retry-After), fail "
    "(503), add latency or drop connections. On start it prints its base URL, the credentials "
    "it accepts and the three variables to export for a worker.",
    "Control endpoints (not in Levers): GET /_sandbox/stats (accepted requests and contacts, "
    "answers per status), GET /_sandbox/requests (every accepted request body), DELETE "
    "/_sandbox/requests (forget them), POST /_sandbox/config (change any option below at run "
    'time, e.g. {"rate_limit_per_second": 5, "fail_rate": 0.1}).',
)


def _build_parser() -> argparse.ArgumentParser:
    from worker.commands import HelpFormatter, exit_codes_help, paragraphs

    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(
        prog="levers-sandbox",
        description=paragraphs(*SANDBOX_ABOUT),
        formatter_class=HelpFormatter,
        epilog=exit_codes_help(
            (
                (0, "stopped by SIGINT or SIGTERM"),
                (1, "the port could not be had"),
                (2, "bad option"),
            )
        )
        + "\n\nenvironment: none read; every setting is an option.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    add("--port", type=_port, default=8080, help="0 picks a free port (default: %(default)s)")
    add(
        "--client-id",
        default=defaults.client_id,
        help="the client id the auth endpoint accepts (default: %(default)s)",
    )
    add(
        "--client-secret",
        default=defaults.client_secret,
        help="the client secret it accepts (default: %(default)s)",
    )
    add(
        "--token-ttl",
        type=_finite,
        default=defaults.token_ttl_seconds,
        metavar="SECONDS",
        help="lifetime of the JWTs it issues; negative issues expired ones (default: %(default)g)",
    )
    add(
        "--rate-limit",
        type=_non_negative,
        default=0.0,
        metavar="PER_SECOND",
        help="bulk requests allowed in any 1 s window, the rest get 429 (default: 0, no limit)",
    )
    add(
        "--retry-after",
        type=_non_negative,
        default=defaults.retry_after_seconds,
        metavar="SECONDS",
        help="Retry-After of each 429 (default: %(default)g)",
    )
    add(
        "--fail-rate",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="bulk requests answered 503 at random (default: 0)",
    )
    add(
        "--rate-429",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="bulk requests answered 429 at random (default: 0)",
    )
    add(
        "--drop-rate",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="bulk requests accepted, then answered by closing the connection (default: 0)",
    )
    add(
        "--latency",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="added before answering each accepted request (default: 0)",
    )
    add(
        "--reject-number",
        action="append",
        default=[],
        metavar="E164",
        help="a number answered 422 as if Levers refused it (repeat; default: none)",
    )
    add("--seed", type=int, default=None, help="seed of the random choices (default: from the OS)")
    add("--verbose", action="store_true", help="one line per request on stderr (default: off)")
    add(
        "--webhook-url",
        metavar="URL",
        help="POST a signed phone_call.ended webhook per accepted contact here "
        "(default: none, no webhooks)",
    )
    add(
        "--webhook-secret",
        metavar="WHSEC",
        help="whsec_... secret to sign the webhooks with, as Svix does (default: none)",
    )
    add(
        "--webhook-secret-file",
        metavar="FILE",
        help="a file holding that secret, kept out of the process list (default: none)",
    )
    add(
        "--webhook-mix",
        type=parse_mix,
        default=None,
        metavar="WEIGHTS",
        help=f"outcome weights, e.g. answered=0.7,no_answer=0.3 ({', '.join(OUTCOMES)}; "
        "default: the sandbox's own mix)",
    )
    add(
        "--webhook-delay",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="before each event is sent (default: 0)",
    )
    add(
        "--webhook-jitter",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="random extra delay of each event (default: 0)",
    )
    add(
        "--webhook-duplicates",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="events delivered twice (default: 0)",
    )
    add(
        "--webhook-out-of-order",
        action="store_true",
        help="each request's events sent in reverse order (default: in order)",
    )
    return parser


def start_banner(sandbox: Sandbox) -> str:
    """What `levers-sandbox` prints on start: where it is, what it accepts, what to export."""
    config = sandbox.config
    url = sandbox.url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
    return "\n".join(
        [
            f"levers-sandbox listening on {sandbox.url}",
            f"it accepts client id {config.client_id!r} with client secret "
            f"{config.client_secret!r}; point a worker or producer at it with:",
            f"  export LEVERS_BASE_URL={url}",
            f"  export LEVERS_CLIENT_ID={config.client_id}",
            f"  export LEVERS_CLIENT_SECRET={config.client_secret}",
            f"watch it: curl {url}{STATS_PATH} (also {REQUESTS_PATH}, {CONFIG_PATH}); "
            "Ctrl-C stops it",
        ]
    )


def _webhooks_from_args(args: argparse.Namespace) -> WebhookConfig:
    changes: dict[str, Any] = {} if args.webhook_mix is None else {"mix": args.webhook_mix}
    secret = args.webhook_secret
    if args.webhook_secret_file:
        try:
            with open(args.webhook_secret_file, encoding="utf-8") as file:
                secret = file.read().strip()
        except OSError as exc:
            raise ValueError(f"--webhook-secret-file: {exc.strerror}") from None
    return WebhookConfig(
        url=args.webhook_url,
        secret=secret,
        delay_seconds=args.webhook_delay,
        jitter_seconds=args.webhook_jitter,
        duplicate_rate=args.webhook_duplicates,
        out_of_order=args.webhook_out_of_order,
        seed=args.seed,
        **changes,
    )


def _config_from_args(args: argparse.Namespace) -> SandboxConfig:
    return SandboxConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_ttl_seconds=args.token_ttl,
        rate_limit_per_second=args.rate_limit,
        retry_after_seconds=args.retry_after,
        fail_rate=args.fail_rate,
        rate_429=args.rate_429,
        drop_rate=args.drop_rate,
        latency_seconds=args.latency,
        reject_numbers=frozenset(args.reject_number),
        seed=args.seed,
    )


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _StopRequested(Exception):
    """Raised in the main thread by SIGINT or SIGTERM."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # Raising, rather than setting an Event, cannot deadlock on a lock the main thread holds.
    # A second signal while stopping takes the default action: a stuck stop can still be killed.
    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_DFL)
    raise _StopRequested(signal.Signals(signum).name)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    previous = {signum: signal.signal(signum, _raise_stop) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    """`levers-sandbox`: serve until SIGINT or SIGTERM, then exit 0."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        webhooks = _webhooks_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    sandbox = Sandbox(
        _config_from_args(args), args.host, args.port, verbose=args.verbose, webhooks=webhooks
    )
    with _stop_on_signals():
        try:
            sandbox.start()
        except OSError as exc:
            print(
                f"levers-sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
            )
            return 1
        try:
            print(start_banner(sandbox), flush=True)
            threading.Event().wait()
        except _StopRequested:
            pass
        finally:
            sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
