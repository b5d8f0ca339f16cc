"""levers-sandbox over real HTTP: a Sandbox on a free port, httpx as the client.

Time is a fake clock handed to the Sandbox (token expiry, rate-limit window, received_at), so no
test sleeps; the CLI test waits for the "listening" line with a deadline.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import jwt
import pytest

from worker.sandbox import (
    AUTH_PATH,
    BULK_PATH,
    CONFIG_PATH,
    REQUESTS_PATH,
    STATS_PATH,
    Sandbox,
    SandboxConfig,
    main,
)

SAUDI = "+966501234567"
US = "+14155552671"
UK = "+442071838750"
DOCS_EXAMPLE = "+96612341234"  # the Levers docs' example: too short to be a Saudi number
TEMPLATE_ID = "3f2b8a52-6d1e-4f0a-9c57-1b2e4d6f8a90"
TIMEOUT = httpx.Timeout(5.0)
REPO_ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sandbox(clock: FakeClock) -> Iterator[Callable[..., Sandbox]]:
    started: list[Sandbox] = []

    def make(**config: Any) -> Sandbox:
        sandbox = Sandbox(SandboxConfig(**config), clock=clock).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        yield client


def get_token(client: httpx.Client) -> str:
    response = client.post(
        AUTH_PATH, json={"clientId": "sandbox-client", "clientSecret": "sandbox-secret"}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bulk(client: httpx.Client, body: Any, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or get_token(client)}"}
    return client.post(BULK_PATH, json=body, headers=headers)


def contacts_body(*numbers: str, **fields: Any) -> dict[str, Any]:
    return {"contacts": [{"numberToCall": number} for number in numbers], **fields}


def error_locs(response: httpx.Response) -> list[tuple[list[Any], str]]:
    assert response.status_code == 422, response.text
    return [(error["loc"], error["type"]) for error in response.json()["detail"]]


# --- auth ------------------------------------------------------------------------------------


def test_auth_issues_a_jwt_with_subject_and_expiry(client: httpx.Client, clock: FakeClock) -> None:
    claims = jwt.decode(get_token(client), options={"verify_signature": False})

    assert claims["sub"] == "sandbox-client"
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] == int(clock.now + 3600)


def test_auth_rejects_wrong_credentials(client: httpx.Client) -> None:
    response = client.post(AUTH_PATH, json={"clientId": "sandbox-client", "clientSecret": "nope"})

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid credentials"}


def test_auth_answers_422_for_missing_fields_and_for_non_json(client: httpx.Client) -> None:
    missing = client.post(AUTH_PATH, json={"clientId": "sandbox-client"})
    not_json = client.post(AUTH_PATH, content=b"clientId=x", headers={"Content-Type": "text/plain"})

    assert error_locs(missing) == [(["body", "clientSecret"], "missing")]
    assert error_locs(not_json) == [(["body", 0], "json_invalid")]


# --- bulk: authentication --------------------------------------------------------------------


def test_bulk_without_a_token_is_401(client: httpx.Client, sandbox: Sandbox) -> None:
    response = client.post(BULK_PATH, json=contacts_body(SAUDI))

    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert sandbox.accepted() == []


def test_bulk_rejects_a_token_this_server_did_not_issue(
    client: httpx.Client, make_sandbox: Callable[..., Sandbox]
) -> None:
    other = make_sandbox()
    with httpx.Client(base_url=other.url, timeout=TIMEOUT) as other_client:
        foreign_token = get_token(other_client)

    for token in (foreign_token, "not-a-jwt"):
        response = bulk(client, contacts_body(SAUDI), token)
        assert response.status_code == 401
        assert response.json() == {"detail": "Not authenticated"}


def test_bulk_rejects_an_expired_token(client: httpx.Client, clock: FakeClock) -> None:
    token = get_token(client)
    assert bulk(client, contacts_body(SAUDI), token).status_code == 201

    clock.advance(3600)
    response = bulk(client, contacts_body(US), token)

    assert response.status_code == 401
    assert response.json() == {"detail": "Token expired"}


def test_a_negative_ttl_issues_tokens_that_are_already_expired(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(token_ttl_seconds=-1)
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        response = bulk(client, contacts_body(SAUDI))

    assert response.status_code == 401
    assert response.json() == {"detail": "Token expired"}


# --- bulk: validation ------------------------------------------------------------------------


def test_a_valid_request_is_answered_201_and_recorded(
    client: httpx.Client, sandbox: Sandbox, clock: FakeClock
) -> None:
    body = {
        "contacts": [
            {
                "numberToCall": SAUDI,
                "firstName": "Sara",
                "lastName": "Al-Harbi",
                "metadata": {"batch_id": "b1", "contact_id": "c1"},
                "promptTags": {"amount": "120"},
            },
            {"numberToCall": US},
            {"numberToCall": UK, "firstName": None},
        ],
        "aiSettingsTemplateId": TEMPLATE_ID,
        "updateExisting": False,
        "countryCode": "SA",
        "batchSize": 10,
    }

    response = bulk(client, body)

    assert response.status_code == 201
    assert response.json() == {}
    [accepted] = sandbox.accepted()
    assert accepted.body == body
    assert accepted.received_at == clock.now


def test_a_bad_number_is_reported_at_its_index(client: httpx.Client, sandbox: Sandbox) -> None:
    response = bulk(client, contacts_body(SAUDI, US, UK, DOCS_EXAMPLE, SAUDI))

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "contacts", 3, "numberToCall"]
    assert error["type"] == "value_error"
    assert sandbox.accepted() == []


@pytest.mark.parametrize(
    "number",
    ["966501234567", "+9665012345670000", "+٩٦٦٥٠١٢٣٤٥٦٧", "+000501234567", "+1 415 555 2671"],
)
def test_numbers_that_are_not_e164_are_refused(client: httpx.Client, number: str) -> None:
    response = bulk(client, contacts_body(number))

    assert error_locs(response) == [(["body", "contacts", 0, "numberToCall"], "value_error")]


def test_a_non_string_prompt_tag_is_reported_down_to_the_tag(client: httpx.Client) -> None:
    body = {"contacts": [{"numberToCall": SAUDI, "promptTags": {"name": "Sara", "amount": 120}}]}

    response = bulk(client, body)

    assert error_locs(response) == [
        (["body", "contacts", 0, "promptTags", "amount"], "string_type")
    ]


def test_undocumented_fields_are_forbidden_and_every_error_is_reported(
    client: httpx.Client,
) -> None:
    body = {
        "contacts": [
            {"numberToCall": SAUDI, "phone": SAUDI},
            {"numberToCall": DOCS_EXAMPLE},
        ],
        "callbackUrl": "https://example.com/hook",
    }

    response = bulk(client, body)

    assert error_locs(response) == [
        (["body", "contacts", 0, "phone"], "extra_forbidden"),
        (["body", "contacts", 1, "numberToCall"], "value_error"),
        (["body", "callbackUrl"], "extra_forbidden"),
    ]


def one_contact(**fields: Any) -> dict[str, Any]:
    return {"contacts": [{"numberToCall": SAUDI, **fields}]}


def top_level(**fields: Any) -> dict[str, Any]:
    return contacts_body(SAUDI, **fields)


FIRST = ("body", "contacts", 0)


@pytest.mark.parametrize(
    ("body", "loc", "error_type"),
    [
        ([{"numberToCall": SAUDI}], ("body",), "model_attributes_type"),
        ({}, ("body", "contacts"), "missing"),
        ({"contacts": []}, ("body", "contacts"), "too_short"),
        ({"contacts": [{"numberToCall": SAUDI}] * 10_001}, ("body", "contacts"), "too_long"),
        ({"contacts": {"numberToCall": SAUDI}}, ("body", "contacts"), "list_type"),
        ({"contacts": [SAUDI]}, FIRST, "model_attributes_type"),
        ({"contacts": [{"firstName": "Sara"}]}, (*FIRST, "numberToCall"), "missing"),
        (one_contact(numberToCall=966501234567), (*FIRST, "numberToCall"), "string_type"),
        (one_contact(metadata=[1]), (*FIRST, "metadata"), "dict_type"),
        (one_contact(promptTags="amount=120"), (*FIRST, "promptTags"), "dict_type"),
        (one_contact(lastName=7), (*FIRST, "lastName"), "string_type"),
        (one_contact(batchSize=10), (*FIRST, "batchSize"), "extra_forbidden"),
        (
            top_level(aiSettingsTemplateId="default"),
            ("body", "aiSettingsTemplateId"),
            "uuid_parsing",
        ),
        (top_level(updateExisting="yes"), ("body", "updateExisting"), "bool_type"),
        (top_level(batchSize=5), ("body", "batchSize"), "greater_than_equal"),
        (top_level(batchSize=1001), ("body", "batchSize"), "less_than_equal"),
        (top_level(batchSize=12.5), ("body", "batchSize"), "int_type"),
        (top_level(countryCode=966), ("body", "countryCode"), "string_type"),
    ],
)
def test_invalid_bodies_are_answered_like_fastapi(
    client: httpx.Client, body: Any, loc: tuple[str | int, ...], error_type: str
) -> None:
    assert error_locs(bulk(client, body)) == [(list(loc), error_type)]


def test_a_body_that_is_not_json_is_422(client: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {get_token(client)}"}

    response = client.post(BULK_PATH, content=b'{"contacts": [', headers=headers)

    assert error_locs(response) == [(["body", 14], "json_invalid")]


def test_reject_numbers_are_refused_at_their_index(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(reject_numbers=frozenset({US}))
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        response = bulk(client, contacts_body(SAUDI, UK, US))

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "value_error",
            "loc": ["body", "contacts", 2, "numberToCall"],
            "msg": "number refused by the sandbox",
        }
    ]
    assert sandbox.accepted() == []


# --- bulk: rate limits, failures, drops, latency ---------------------------------------------


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The largest number of `times` inside any half-open window (t - seconds, t]."""
    return max(sum(1 for other in times if end - seconds < other <= end) for end in times)


def test_the_rate_limit_answers_429_beyond_its_window(
    make_sandbox: Callable[..., Sandbox], clock: FakeClock
) -> None:
    sandbox = make_sandbox(rate_limit_per_second=2)
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        token = get_token(client)
        first, second, third = (bulk(client, contacts_body(n), token) for n in (SAUDI, US, UK))
        clock.advance(0.5)
        retries = [bulk(client, contacts_body(UK), token) for _ in range(2)]
        clock.advance(0.499)
        too_early = bulk(client, contacts_body(UK), token)
        clock.advance(0.001)
        after_window = bulk(client, contacts_body(UK), token)

    assert [first.status_code, second.status_code] == [201, 201]
    assert third.status_code == 429
    assert third.headers["Retry-After"] == "1"
    assert third.json() == {"detail": "Too many requests"}
    assert [r.status_code for r in (*retries, too_early)] == [429, 429, 429]
    # The refused retries did not count: the window reopens 1 s after the first two requests.
    assert after_window.status_code == 201
    stats = sandbox.stats()
    assert stats.statuses == {"201": 3, "429": 4}
    assert stats.accepted_requests == 3
    accepted_times = [answer.received_at for answer in stats.answers if answer.status == 201]
    assert most_in_any_window(accepted_times, 1.0) == 2


def test_retry_after_is_whole_seconds_rounded_up(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(rate_limit_per_second=1, retry_after_seconds=2.1)
    with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
        token = get_token(client)
        bulk(client, contacts_body(SAUDI), token)
        limited = bulk(client, contacts_body(US), token)

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"


def test_rate_429_answers_429_at_random_and_records_nothing(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.configure(rate_429=1.0)

    response = bulk(client, contacts_body(SAUDI))

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert sandbox.accepted() == []


def test_fail_rate_answers_503_after_validation_and_records_nothing(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    sandbox.configure(fail_rate=1.0)

    failed = bulk(client, contacts_body(SAUDI))
    invalid = bulk(client, contacts_body(DOCS_EXAMPLE))

    assert failed.status_code == 503
    assert failed.json() == {"detail": "Service unavailable"}
    assert invalid.status_code == 422
    assert sandbox.accepted() == []
    assert sandbox.stats().statuses == {"422": 1, "503": 1}


def test_drop_rate_records_the_request_and_closes_without_an_answer(
    client: httpx.Client, sandbox: Sandbox
) -> None:
    token = get_token(client)
    sandbox.configure(drop_rate=1.0)

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        bulk(client, contacts_body(SAUDI, US), token)

    [accepted] = sandbox.accepted()
    assert accepted.body == contacts_body(SAUDI, US) and accepted.dropped
    assert sandbox.stats().statuses == {"dropped": 1}
    sandbox.configure(drop_rate=0.0)
    assert bulk(client, contacts_body(UK), token).status_code == 201
    assert not sandbox.accepted()[-1].dropped


def test_latency_delays_accepted_requests(client: httpx.Client, sandbox: Sandbox) -> None:
    token = get_token(client)
    sandbox.configure(latency_seconds=0.2)

    started = time.monotonic()
    response = bulk(client, contacts_body(SAUDI), token)

    assert response.status_code == 201
    assert time.monotonic() - started >= 0.2


def test_the_same_seed_gives_the_same_random_answers(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    def statuses(sandbox: Sandbox) -> list[int]:
        with httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client:
            token = get_token(client)
            return [bulk(client, contacts_body(SAUDI), token).status_code for _ in range(20)]

    first = statuses(make_sandbox(seed=7, rate_429=0.3, fail_rate=0.3))
    second = statuses(make_sandbox(seed=7, rate_429=0.3, fail_rate=0.3))

    assert first == second
    assert {201, 429, 503} <= set(first)


# --- runtime control -------------------------------------------------------------------------


def test_configure_changes_behaviour_at_runtime(client: httpx.Client, sandbox: Sandbox) -> None:
    token = get_token(client)

    sandbox.configure(fail_rate=1.0)
    assert bulk(client, contacts_body(SAUDI), token).status_code == 503
    sandbox.configure(fail_rate=0.0, reject_numbers={SAUDI})
    assert bulk(client, contacts_body(SAUDI), token).status_code == 422
    assert bulk(client, contacts_body(US), token).status_code == 201
    assert sandbox.config.reject_numbers == frozenset({SAUDI})


def test_configure_refuses_unknown_fields_and_bad_values(sandbox: Sandbox) -> None:
    with pytest.raises(TypeError):
        sandbox.configure(fail_ratio=1.0)
    with pytest.raises(ValueError, match="drop_rate"):
        sandbox.configure(drop_rate=1.5)

    assert sandbox.config == SandboxConfig()


def test_config_endpoint_changes_behaviour(client: httpx.Client, sandbox: Sandbox) -> None:
    token = get_token(client)

    response = client.post(CONFIG_PATH, json={"reject_numbers": [UK], "latency_seconds": 0})

    assert response.status_code == 200
    assert response.json() == {**SandboxConfig().to_json(), "reject_numbers": [UK]}
    assert bulk(client, contacts_body(UK), token).status_code == 422


def test_config_endpoint_refuses_bad_values(client: httpx.Client, sandbox: Sandbox) -> None:
    wrong_type = client.post(CONFIG_PATH, json={"fail_rate": "half", "colour": "red"})
    out_of_range = client.post(CONFIG_PATH, json={"fail_rate": 2, "latency_seconds": -1})

    assert error_locs(wrong_type) == [
        (["body", "fail_rate"], "float_type"),
        (["body", "colour"], "extra_forbidden"),
    ]
    assert error_locs(out_of_range) == [
        (["body", "fail_rate"], "value_error"),
        (["body", "latency_seconds"], "value_error"),
    ]
    assert sandbox.config == SandboxConfig()


def test_requests_and_stats_endpoints(client: httpx.Client, clock: FakeClock) -> None:
    token = get_token(client)
    bulk(client, contacts_body(SAUDI, US), token)
    bulk(client, contacts_body(DOCS_EXAMPLE), token)
    bulk(client, contacts_body(UK), token)

    requests = client.get(REQUESTS_PATH).json()
    stats = client.get(STATS_PATH).json()

    assert requests == {
        "requests": [
            {"received_at": clock.now, "body": contacts_body(SAUDI, US), "dropped": False},
            {"received_at": clock.now, "body": contacts_body(UK), "dropped": False},
        ]
    }
    assert stats == {
        "accepted_requests": 2,
        "accepted_contacts": 3,
        "statuses": {"201": 2, "422": 1},
        "answers": [[clock.now, 201], [clock.now, 422], [clock.now, 201]],
    }


def test_reset_forgets_requests_and_stats(client: httpx.Client, sandbox: Sandbox) -> None:
    token = get_token(client)
    bulk(client, contacts_body(SAUDI), token)
    sandbox.reset()
    assert sandbox.stats().answers == []

    bulk(client, contacts_body(US), token)
    response = client.delete(REQUESTS_PATH)

    assert response.status_code == 204
    assert response.content == b""
    assert sandbox.accepted() == []
    assert client.get(STATS_PATH).json() == {
        "accepted_requests": 0,
        "accepted_contacts": 0,
        "statuses": {},
        "answers": [],
    }


def test_unknown_paths_and_methods(client: httpx.Client) -> None:
    missing = client.get("/api-service/v1/nothing")
    wrong_method = client.get(BULK_PATH)

    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
    assert (wrong_method.status_code, wrong_method.json()) == (
        405,
        {"detail": "Method Not Allowed"},
    )


def test_stop_ends_keep_alive_connections(sandbox: Sandbox, client: httpx.Client) -> None:
    get_token(client)

    sandbox.stop()

    with pytest.raises(httpx.TransportError):
        get_token(client)


def test_verbose_logs_one_line_per_request_without_numbers_or_tokens(
    clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        Sandbox(verbose=True, clock=clock) as sandbox,
        httpx.Client(base_url=sandbox.url, timeout=TIMEOUT) as client,
    ):
        token = get_token(client)
        bulk(client, contacts_body(SAUDI, US), token)

    err = capsys.readouterr().err
    assert err.splitlines() == [
        line for line in err.splitlines() if line.startswith("levers-sandbox ")
    ]
    assert len(err.splitlines()) == 2
    assert f"POST {BULK_PATH} 201 contacts=2" in err
    assert SAUDI not in err and US not in err and token not in err


# --- command line ----------------------------------------------------------------------------


def copy_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def read_line_within(lines: queue.Queue[str], seconds: float) -> str:
    try:
        return lines.get(timeout=seconds)
    except queue.Empty:
        pytest.fail(f"levers-sandbox printed nothing within {seconds} s")


def test_cli_serves_until_sigterm_and_exits_0() -> None:
    command = [sys.executable, "-m", "worker.sandbox", "--port", "0", "--client-id", "cli"]
    command += ["--client-secret", "s3cret", "--reject-number", US, "--seed", "1"]
    with subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=copy_lines, args=(process.stdout, lines))
        reader.start()
        try:
            line = read_line_within(lines, 15.0)
            match = re.fullmatch(r"levers-sandbox listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert match, line
            with httpx.Client(base_url=match.group(1), timeout=TIMEOUT) as client:
                auth = client.post(AUTH_PATH, json={"clientId": "cli", "clientSecret": "s3cret"})
                token = auth.json()["access_token"]
                assert bulk(client, contacts_body(SAUDI), token).status_code == 201
                assert bulk(client, contacts_body(US), token).status_code == 422
        finally:
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=10)
            reader.join(timeout=10)

        assert returncode == 0, process.stderr.read() if process.stderr else ""


@pytest.mark.parametrize(
    "argv",
    [
        ["--fail-rate", "1.5"],
        ["--drop-rate", "-0.1"],
        ["--latency", "-1"],
        ["--token-ttl", "inf"],
        ["--port", "x"],
    ],
)
def test_cli_refuses_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
    assert "levers-sandbox: error" in capsys.readouterr().err
