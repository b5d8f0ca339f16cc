"""Console passwords: scrypt hashes (the standard library's `hashlib.scrypt`), never the
passwords themselves, in LEVERS_CONSOLE_USERS.

    name:scrypt:<n>:<r>:<p>:<salt>:<key>      (salt and key in unpadded base64url)

No `$` in it, so the entry can go in a shell's double quotes or a compose file unescaped.

`levers-admin console-password NAME` prints such an entry for a password typed at its prompt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

# scrypt's cost: 2^15 x 8 x 128 B = 32 MiB and about 50-100 ms a check on one core, the
# parameters OWASP names for scrypt. A guessed password costs an attacker as much.
N, R, P = 2**15, 8, 1
KEY_BYTES = 32
SALT_BYTES = 16
_MAXMEM = 64 * 1024 * 1024  # scrypt needs 128 * n * r bytes; OpenSSL's default cap is 32 MiB
_HASH = re.compile(r"scrypt:(\d+):(\d+):(\d+):([A-Za-z0-9_-]+):([A-Za-z0-9_-]+)")
NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")  # a console user's name


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, N, R, P)
    return f"scrypt:{N}:{R}:{P}:{_b64(salt)}:{_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    match = _HASH.fullmatch(encoded)
    if match is None:
        return False
    n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    salt, key = _unb64(match.group(4)), _unb64(match.group(5))
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(key)), key)


@dataclass(frozen=True)
class Users:
    """The console's users: name -> encoded hash."""

    hashes: dict[str, str]

    @classmethod
    def parse(cls, value: str) -> Users:
        """From LEVERS_CONSOLE_USERS: `name:hash` entries separated by commas or white space.
        Raises ValueError naming the entry (by position and name, never its hash)."""
        hashes: dict[str, str] = {}
        for position, entry in enumerate(re.split(r"[,\s]+", value.strip()), start=1):
            if not entry:
                continue
            name, _, encoded = entry.partition(":")
            if not NAME.fullmatch(name):
                raise ValueError(
                    f"entry {position}: a user name is 1-64 letters, digits or _.@- "
                    "followed by `:` and its hash"
                )
            match = _HASH.fullmatch(encoded)
            if not match or not _cost_ok(*(int(match.group(i)) for i in (1, 2, 3))):
                raise ValueError(
                    f"entry {position} ({name}): not a scrypt hash this service can check; "
                    f"make one with `levers-admin console-password {name}`"
                )
            if name in hashes:
                raise ValueError(f"entry {position}: user {name} is named twice")
            hashes[name] = encoded
        return cls(hashes)

    def check(self, name: str, password: str) -> bool:
        """True for a known name with its password. An unknown name costs the same scrypt,
        so the time taken does not tell which names exist."""
        encoded = self.hashes.get(name)
        if encoded is None:
            verify_password(password, _UNKNOWN)
            return False
        return verify_password(password, encoded)


def _cost_ok(n: int, r: int, p: int) -> bool:
    """Parameters scrypt accepts within the memory allowed here (n a power of two > 1)."""
    return n > 1 and n & (n - 1) == 0 and r >= 1 and 1 <= p <= 16 and 128 * n * r <= _MAXMEM


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, size: int = KEY_BYTES) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=size
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Checked against when the name is unknown (no password matches it: its key is random).
_UNKNOWN = f"scrypt:{N}:{R}:{P}:{_b64(b'0' * SALT_BYTES)}:{_b64(os.urandom(KEY_BYTES))}"
