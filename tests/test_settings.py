"""Settings built from a plain mapping: defaults, parsing, secrets and one error for all faults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from worker import settings as settings_module
from worker.errors import SettingsError
from worker.settings import Settings, declared


def problems_of(env: dict[str, str]) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return caught.value


def test_defaults_match_the_design() -> None:
    settings = Settings.from_env({})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.namespace == "levers"
    assert settings.base_url == "https://api.dev.uselevers.com"
    assert settings.client_id is None
    assert settings.client_secret is None
    assert settings.api_token is None
    assert settings.batch_max_size == 100
    assert settings.batch_max_wait_seconds == 2
    assert settings.max_requests_per_second == 5
    assert settings.max_contacts_per_minute == 0
    assert settings.dedupe_window_seconds == 3600
    assert settings.metrics_port == 9191
    assert settings.default_region is None
    assert settings.resend_unknown == "false"
    assert settings.resend_unknown_at_once is False
    assert settings.webhook_secret is None
    assert settings.has_credentials is False


def test_empty_mapping_equals_the_dataclass_defaults() -> None:
    assert Settings.from_env({}) == Settings()


# (variable, raw value, attribute, parsed value)
PARSED = [
    ("REDIS_URL", "redis://cache:6380/2", "redis_url", "redis://cache:6380/2"),
    ("REDIS_URL", "rediss://:pw@cache:6380", "redis_url", "rediss://:pw@cache:6380"),
    ("REDIS_URL", "unix:///run/redis.sock", "redis_url", "unix:///run/redis.sock"),
    ("REDIS_SENTINELS", "s1:26379, s2:26379", "redis_sentinels", "s1:26379, s2:26379"),
    ("REDIS_SENTINEL_MASTER", "mymaster", "redis_sentinel_master", "mymaster"),
    ("LEVERS_REDIS_MIN_REPLICAS", "1", "redis_min_replicas", 1),
    (
        "LEVERS_ALLOWED_NUMBER_TYPES",
        "Mobile, toll_free",
        "allowed_number_types",
        "mobile,toll_free",
    ),
    ("LEVERS_MAX_BACKLOG_BYTES", "1000000", "max_backlog_bytes", 1_000_000),
    ("LEVERS_NAMESPACE", "acme-prod", "namespace", "acme-prod"),
    ("LEVERS_BASE_URL", "https://api.uselevers.com", "base_url", "https://api.uselevers.com"),
    ("LEVERS_BASE_URL", "http://127.0.0.1:8080", "base_url", "http://127.0.0.1:8080"),
    ("LEVERS_CLIENT_ID", "client-1", "client_id", "client-1"),
    ("LEVERS_CLIENT_SECRET", "s3cret", "client_secret", "s3cret"),
    ("LEVERS_API_TOKEN", "tok.en.jwt", "api_token", "tok.en.jwt"),
    ("LEVERS_BATCH_MAX_SIZE", "250", "batch_max_size", 250),
    ("LEVERS_BATCH_MAX_SIZE", " 7 ", "batch_max_size", 7),
    ("LEVERS_BATCH_MAX_WAIT_SECONDS", "0.5", "batch_max_wait_seconds", 0.5),
    ("LEVERS_BATCH_MAX_WAIT_SECONDS", "3", "batch_max_wait_seconds", 3.0),
    ("LEVERS_MAX_REQUESTS_PER_SECOND", "2.5", "max_requests_per_second", 2.5),
    ("LEVERS_MAX_CONTACTS_PER_MINUTE", "600", "max_contacts_per_minute", 600),
    ("LEVERS_DEDUPE_WINDOW_SECONDS", "0", "dedupe_window_seconds", 0),
    ("LEVERS_DEDUPE_WINDOW_SECONDS", "86400", "dedupe_window_seconds", 86400),
    ("LEVERS_DEFAULT_REGION", "SA", "default_region", "SA"),
    ("LEVERS_DEFAULT_REGION", "sa", "default_region", "SA"),
    ("LEVERS_DEFAULT_REGION", " gb ", "default_region", "GB"),
    ("LEVERS_METRICS_PORT", "9200", "metrics_port", 9200),
    ("LEVERS_METRICS_PORT", "0", "metrics_port", 0),
    ("LEVERS_CONNECT_TIMEOUT_SECONDS", "2", "connect_timeout_seconds", 2.0),
    ("LEVERS_REQUEST_TIMEOUT_SECONDS", "12.5", "request_timeout_seconds", 12.5),
    ("LEVERS_MAX_SEND_RETRIES", "0", "max_send_retries", 0),
    ("LEVERS_SEND_LEASE_SECONDS", "300", "send_lease_seconds", 300.0),
    ("LEVERS_RESEND_UNKNOWN", "true", "resend_unknown", "true"),
    ("LEVERS_RESEND_UNKNOWN", "After_Grace", "resend_unknown", "after_grace"),
    ("LEVERS_OUTCOME_GRACE_SECONDS", "600", "outcome_grace_seconds", 600),
    ("LEVERS_BATCH_RETENTION_SECONDS", "3600", "batch_retention_seconds", 3600),
    ("LEVERS_WORKER_TIMEOUT_MS", "50", "worker_timeout_ms", 50),
    ("LEVERS_HEARTBEAT_TIMEOUT_MS", "15000", "heartbeat_timeout_ms", 15000),
    ("LEVERS_MAINTENANCE_CHANCE", "1000", "maintenance_chance", 1000),
    ("LEVERS_LOG_LEVEL", "debug", "log_level", "DEBUG"),
]


@pytest.mark.parametrize(("variable", "raw", "attribute", "expected"), PARSED)
def test_each_variable_is_parsed(variable: str, raw: str, attribute: str, expected: object) -> None:
    value = getattr(Settings.from_env({variable: raw}), attribute)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_values_mean_the_default(blank: str) -> None:
    env = {variable: blank for variable, *_ in PARSED}
    assert Settings.from_env(env) == Settings()


# (variable, bad value)
BAD = [
    ("REDIS_URL", "foo://bar"),
    ("REDIS_URL", "redis://"),
    ("REDIS_URL", "redis://cache:port/0"),
    ("REDIS_URL", "redis://cache:6379/zero"),
    ("REDIS_SENTINELS", "s1"),
    ("REDIS_SENTINELS", "s1:26379,s2:x"),
    ("LEVERS_REDIS_MIN_REPLICAS", "-1"),
    ("LEVERS_ALLOWED_NUMBER_TYPES", "cell"),
    ("LEVERS_ALLOWED_NUMBER_TYPES", " , "),
    ("LEVERS_NAMESPACE", "levers prod"),
    ("LEVERS_NAMESPACE", "levers:*"),
    ("LEVERS_NAMESPACE", "{levers}"),
    ("LEVERS_BASE_URL", "api.uselevers.com"),
    ("LEVERS_BASE_URL", "ftp://api.uselevers.com"),
    ("LEVERS_BATCH_MAX_SIZE", "0"),
    ("LEVERS_BATCH_MAX_SIZE", "10001"),
    ("LEVERS_BATCH_MAX_SIZE", "2.5"),
    ("LEVERS_BATCH_MAX_SIZE", "lots"),
    ("LEVERS_BATCH_MAX_WAIT_SECONDS", "0.01"),
    ("LEVERS_BATCH_MAX_WAIT_SECONDS", "nan"),
    ("LEVERS_BATCH_MAX_WAIT_SECONDS", "inf"),
    ("LEVERS_BATCH_MAX_WAIT_SECONDS", "2s"),
    ("LEVERS_MAX_REQUESTS_PER_SECOND", "0"),
    ("LEVERS_MAX_REQUESTS_PER_SECOND", "-1"),
    ("LEVERS_MAX_CONTACTS_PER_MINUTE", "-1"),
    ("LEVERS_DEDUPE_WINDOW_SECONDS", "-5"),
    ("LEVERS_DEDUPE_WINDOW_SECONDS", "1h"),
    ("LEVERS_DEFAULT_REGION", "XX"),
    ("LEVERS_DEFAULT_REGION", "Saudi Arabia"),
    ("LEVERS_METRICS_PORT", "65536"),
    ("LEVERS_METRICS_PORT", "http"),
    ("LEVERS_CONNECT_TIMEOUT_SECONDS", "0"),
    ("LEVERS_REQUEST_TIMEOUT_SECONDS", "forever"),
    ("LEVERS_MAX_SEND_RETRIES", "-1"),
    ("LEVERS_SEND_LEASE_SECONDS", "0.5"),
    ("LEVERS_RESEND_UNKNOWN", "maybe"),
    ("LEVERS_OUTCOME_GRACE_SECONDS", "10"),
    ("LEVERS_BATCH_RETENTION_SECONDS", "59"),
    ("LEVERS_WORKER_TIMEOUT_MS", "5"),
    ("LEVERS_HEARTBEAT_TIMEOUT_MS", "999"),
    ("LEVERS_MAINTENANCE_CHANCE", "0"),
    ("LEVERS_LOG_LEVEL", "TRACE"),
]


@pytest.mark.parametrize(("variable", "raw"), BAD)
def test_a_bad_variable_is_named_in_the_error(variable: str, raw: str) -> None:
    error = problems_of({variable: raw})
    assert len(error.problems) == 1
    assert error.problems[0].startswith(f"{variable}=")
    assert variable in str(error)


def test_every_bad_variable_is_reported_in_one_error() -> None:
    env = {
        "LEVERS_BATCH_MAX_SIZE": "0",
        "LEVERS_BATCH_MAX_WAIT_SECONDS": "soon",
        "LEVERS_MAX_REQUESTS_PER_SECOND": "-3",
        "LEVERS_DEFAULT_REGION": "XX",
        "LEVERS_BASE_URL": "api.uselevers.com",
        "LEVERS_RESEND_UNKNOWN": "perhaps",
        "LEVERS_METRICS_PORT": "99999",
        # Good values among the bad are not reported.
        "LEVERS_NAMESPACE": "acme",
        "LEVERS_DEDUPE_WINDOW_SECONDS": "60",
    }
    error = problems_of(env)
    bad = [
        "LEVERS_BATCH_MAX_SIZE",
        "LEVERS_BATCH_MAX_WAIT_SECONDS",
        "LEVERS_MAX_REQUESTS_PER_SECOND",
        "LEVERS_DEFAULT_REGION",
        "LEVERS_BASE_URL",
        "LEVERS_RESEND_UNKNOWN",
        "LEVERS_METRICS_PORT",
    ]
    assert len(error.problems) == len(bad)
    named = {problem.split("=", 1)[0] for problem in error.problems}
    assert named == set(bad)
    for variable in bad:
        assert variable in str(error)
    assert "LEVERS_NAMESPACE" not in str(error)
    assert "LEVERS_DEDUPE_WINDOW_SECONDS" not in str(error)


# --- secrets -------------------------------------------------------------------------------

SECRETS = [
    pytest.param("LEVERS_CLIENT_SECRET", "client_secret", id="client-secret"),
    pytest.param("LEVERS_API_TOKEN", "api_token", id="api-token"),
    pytest.param("REDIS_PASSWORD", "redis_password", id="redis-password"),
    pytest.param("REDIS_SENTINEL_PASSWORD", "redis_sentinel_password", id="sentinel-password"),
]


@pytest.mark.parametrize(("variable", "attribute"), SECRETS)
def test_secret_is_read_from_file_and_stripped(
    tmp_path: Path, variable: str, attribute: str
) -> None:
    path = tmp_path / "secret"
    path.write_text("  from-the-file-4711\n\n", encoding="utf-8")
    settings = Settings.from_env({f"{variable}_FILE": str(path)})
    assert getattr(settings, attribute) == "from-the-file-4711"


@pytest.mark.parametrize(("variable", "attribute"), SECRETS)
def test_missing_secret_file_is_an_error(tmp_path: Path, variable: str, attribute: str) -> None:
    error = problems_of({f"{variable}_FILE": str(tmp_path / "absent")})
    assert len(error.problems) == 1
    assert error.problems[0].startswith(f"{variable}_FILE:")
    # The value is not echoed: an operator may have put the secret itself there by mistake.
    assert "absent" not in str(error)


@pytest.mark.parametrize(("variable", "attribute"), SECRETS)
def test_secret_file_that_is_a_directory_is_an_error(
    tmp_path: Path, variable: str, attribute: str
) -> None:
    error = problems_of({f"{variable}_FILE": str(tmp_path)})
    assert len(error.problems) == 1
    assert error.problems[0].startswith(f"{variable}_FILE:")


@pytest.mark.parametrize("content", ["", "  \n\n"])
@pytest.mark.parametrize(("variable", "attribute"), SECRETS)
def test_empty_secret_file_is_an_error(
    tmp_path: Path, variable: str, attribute: str, content: str
) -> None:
    path = tmp_path / "secret"
    path.write_text(content, encoding="utf-8")
    error = problems_of({f"{variable}_FILE": str(path)})
    assert len(error.problems) == 1
    assert error.problems[0].startswith(f"{variable}_FILE:")
    assert "empty" in error.problems[0]


@pytest.mark.parametrize(("variable", "attribute"), SECRETS)
def test_secret_and_secret_file_together_is_an_error(
    tmp_path: Path, variable: str, attribute: str
) -> None:
    path = tmp_path / "secret"
    path.write_text("file-value-8842", encoding="utf-8")
    error = problems_of({variable: "direct-value-5531", f"{variable}_FILE": str(path)})
    assert len(error.problems) == 1
    assert variable in error.problems[0]
    assert f"{variable}_FILE" in error.problems[0]
    assert "direct-value-5531" not in str(error)
    assert "file-value-8842" not in str(error)


def test_secrets_never_appear_in_error_text(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("token-from-file-9931", encoding="utf-8")
    env = {
        "LEVERS_CLIENT_ID": "client-1",
        "LEVERS_CLIENT_SECRET": "hunter2-client-secret",
        "LEVERS_API_TOKEN": "direct-token-7720",
        "LEVERS_API_TOKEN_FILE": str(token_file),
        "LEVERS_BATCH_MAX_SIZE": "0",
    }
    error = problems_of(env)
    text = str(error) + repr(error) + "".join(error.problems)
    for secret in ("hunter2-client-secret", "direct-token-7720", "token-from-file-9931"):
        assert secret not in text


def test_secrets_never_appear_in_repr(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("token-from-file-9931\n", encoding="utf-8")
    settings = Settings.from_env(
        {
            "LEVERS_CLIENT_ID": "client-1",
            "LEVERS_CLIENT_SECRET": "hunter2-client-secret",
            "LEVERS_API_TOKEN_FILE": str(path),
        }
    )
    assert settings.client_secret == "hunter2-client-secret"
    assert settings.api_token == "token-from-file-9931"
    for text in (repr(settings), str(settings), f"{settings}"):
        assert "client-1" in text  # the id is not a secret: repr still says who we are
        assert "hunter2-client-secret" not in text
        assert "token-from-file-9931" not in text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"LEVERS_API_TOKEN": "t"}, True),
        ({"LEVERS_CLIENT_ID": "id"}, False),
        ({"LEVERS_CLIENT_SECRET": "s"}, False),
        ({"LEVERS_CLIENT_ID": "id", "LEVERS_CLIENT_SECRET": "s"}, True),
    ],
)
def test_has_credentials(env: dict[str, str], expected: bool) -> None:
    assert Settings.from_env(env).has_credentials is expected


# --- individual rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://sandbox.local:8080/", "https://sandbox.local:8080"),
        ("https://sandbox.local:8080//", "https://sandbox.local:8080"),
        ("https://proxy.example/levers/", "https://proxy.example/levers"),
        ("https://proxy.example/levers", "https://proxy.example/levers"),
    ],
)
def test_trailing_slash_is_removed_from_base_url(raw: str, expected: str) -> None:
    assert Settings.from_env({"LEVERS_BASE_URL": raw}).base_url == expected


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "True", "yes", "on", " On "])
def test_resend_unknown_true(raw: str) -> None:
    settings = Settings.from_env({"LEVERS_RESEND_UNKNOWN": raw})
    assert (settings.resend_unknown, settings.resend_unknown_at_once) == ("true", True)


@pytest.mark.parametrize("raw", ["0", "false", "FALSE", "no", "off", ""])
def test_resend_unknown_false(raw: str) -> None:
    settings = Settings.from_env({"LEVERS_RESEND_UNKNOWN": raw})
    assert (settings.resend_unknown, settings.resend_unknown_at_once) == ("false", False)


def test_resend_unknown_after_grace_is_not_an_immediate_resend() -> None:
    settings = Settings.from_env({"LEVERS_RESEND_UNKNOWN": "after_grace"})
    assert (settings.resend_unknown, settings.resend_unknown_at_once) == ("after_grace", False)


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "truee", "after"])
def test_resend_unknown_rejects_other_words(raw: str) -> None:
    error = problems_of({"LEVERS_RESEND_UNKNOWN": raw})
    assert error.problems[0].startswith("LEVERS_RESEND_UNKNOWN=")


WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("raw", [WHSEC, WHSEC.removeprefix("whsec_")])
def test_webhook_secret_in_svix_form(raw: str) -> None:
    assert Settings.from_env({"LEVERS_WEBHOOK_SECRET": raw}).webhook_secret == raw


@pytest.mark.parametrize("raw", ["whsec_not base64!", "whsec_c2hvcnQ=", "whsec_"])
def test_a_bad_webhook_secret_is_refused_without_echoing_it(raw: str) -> None:
    error = problems_of({"LEVERS_WEBHOOK_SECRET": raw})
    assert error.problems[0].startswith("LEVERS_WEBHOOK_SECRET:")
    assert raw.removeprefix("whsec_") not in str(error) or raw == "whsec_"


def test_unknown_default_region_is_an_error() -> None:
    error = problems_of({"LEVERS_DEFAULT_REGION": "XX"})
    assert error.problems[0].startswith("LEVERS_DEFAULT_REGION=")


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.batch_max_size = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.api_token = "stolen"  # type: ignore[misc]
    assert settings.batch_max_size == 100


def test_every_setting_declares_its_variable_and_meaning_once() -> None:
    names = [f.metadata["env"] for f in declared()]
    assert len(names) == len(set(names))
    assert all(f.metadata["doc"] for f in declared())
    assert settings_module.variable("batch_max_size") == "LEVERS_BATCH_MAX_SIZE"


def test_the_readme_configuration_table_names_every_setting() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [f.metadata["env"] for f in declared() if f"`{f.metadata['env']}`" not in table]
    assert not missing, f"README's Configuration table lacks {missing}"


def test_a_bad_redis_url_is_named_in_one_line() -> None:
    error = problems_of({"REDIS_URL": "foo://bar"})
    assert error.problems == [
        "REDIS_URL='foo://bar': must start with redis://, rediss:// or unix:// "
        "(e.g. redis://127.0.0.1:6379/0)"
    ]
