"""Console passwords: scrypt hashes in LEVERS_CONSOLE_USERS, checked in constant shape."""

from __future__ import annotations

import re

import pytest

from tests.commands import clean_env, run
from worker.errors import SettingsError
from worker.passwords import Users, hash_password, verify_password
from worker.settings import Settings


def test_a_hash_checks_its_password_only() -> None:
    encoded = hash_password("correct horse battery")
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    assert not verify_password("correct horse battery", "not-a-hash")
    assert "$" not in encoded and "," not in encoded  # safe in a shell and in the list
    assert encoded != hash_password("correct horse battery")  # salted


def test_users_check_name_and_password() -> None:
    users = Users.parse(f"alice:{hash_password('pw-of-alice-1')}, bob:{hash_password('pw-2')}")
    assert users.check("alice", "pw-of-alice-1")
    assert not users.check("alice", "pw-2")
    assert not users.check("mallory", "pw-of-alice-1")
    assert sorted(users.hashes) == ["alice", "bob"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("alice", "entry 1 (alice): not a scrypt hash"),
        ("alice:scrypt:3:8:1:AAAA:AAAA", "not a scrypt hash this service can check"),
        ("alice:scrypt:1073741824:8:1:AAAA:AAAA", "not a scrypt hash this service can check"),
        ("a!ice:x", "a user name is"),
        ("bad/name:x", "entry 1: a user name is"),
    ],
)
def test_a_bad_entry_is_named_by_position_never_echoed(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as raised:
        Users.parse(value)
    assert "AAAA" not in str(raised.value)


def test_a_user_named_twice_is_refused() -> None:
    entry = f"alice:{hash_password('x' * 12)}"
    with pytest.raises(ValueError, match="entry 2: user alice is named twice"):
        Users.parse(f"{entry},{entry}")


def test_settings_refuse_a_bad_console_user_list_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"LEVERS_CONSOLE_USERS": "alice:plaintext-password"})
    assert "LEVERS_CONSOLE_USERS" in str(raised.value)
    assert "plaintext-password" not in str(raised.value)
    ok = Settings.from_env(
        {
            "LEVERS_CONSOLE_USERS": f"alice:{hash_password('x' * 12)}",
            "LEVERS_CONSOLE_REVEAL_USERS": "alice, carol",
        }
    )
    assert ok.console_reveal_list == frozenset({"alice", "carol"})


def test_levers_admin_prints_an_entry_for_a_password_read_from_stdin() -> None:
    made = run(
        "levers-admin", ["console-password", "alice"], clean_env(), stdin="a-long-secret-1\n"
    )
    assert made.returncode == 0, made.stderr
    entry = made.stdout.strip()
    assert "a-long-secret-1" not in entry
    assert Users.parse(entry).check("alice", "a-long-secret-1")
    short = run("levers-admin", ["console-password", "alice"], clean_env(), stdin="short\n")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    named = run("levers-admin", ["console-password", "a b"], clean_env(), stdin="x" * 20)
    assert named.returncode == 2 and "the name is" in named.stderr


def test_a_console_token_may_not_be_an_ingest_token() -> None:
    token = "shared-token-0123456789"
    with pytest.raises(SettingsError, match="must not be one of LEVERS_INGEST_TOKENS") as raised:
        Settings.from_env({"LEVERS_CONSOLE_TOKENS": token, "LEVERS_INGEST_TOKENS": token})
    assert token not in str(raised.value)
    ok = Settings.from_env({"LEVERS_CONSOLE_TOKENS": token, "LEVERS_INGEST_TOKENS": token + "x"})
    assert ok.console_enabled and ok.console_token_list == [token]
