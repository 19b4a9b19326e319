"""Mosquitto's password-file format, so provisioning needs no `mosquitto_passwd` binary.

Mosquitto 2.0 stores `username:$7$<iterations>$<base64 salt>$<base64 hash>`, where the
hash is PBKDF2-HMAC-SHA512 over the password with a 12-byte salt and 101 iterations
(what `mosquitto_passwd` writes; tests check both ways against the real tools).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The `$7$...` string Mosquitto 2.0 verifies `password` against."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    encoded_salt = base64.b64encode(salt).decode("ascii")
    return f"$7${iterations}${encoded_salt}${base64.b64encode(digest).decode('ascii')}"


def verify_password(password: str, hashed: str) -> bool:
    """True when `hashed` (a `$7$` entry) was made from `password`."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != "7":
        raise ValueError("not a Mosquitto 2.0 PBKDF2-SHA512 ($7$) password hash")
    iterations = int(parts[2])
    salt = base64.b64decode(parts[3])
    expected = base64.b64decode(parts[4])
    digest = hashlib.pbkdf2_hmac(
        "sha512", password.encode("utf-8"), salt, iterations, len(expected)
    )
    return hmac.compare_digest(digest, expected)


def new_password() -> str:
    """A random password that survives URLs, CSV and shell quoting unescaped."""
    return secrets.token_urlsafe(24)


def read_password_file(path: Path) -> dict[str, str]:
    """username -> hash, in file order; a missing file is empty."""
    entries: dict[str, str] = {}
    if not path.exists():
        return entries
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        username, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith("$"):
            raise ValueError(f"{path}:{number}: expected 'username:$7$...'")
        entries[username] = hashed
    return entries


def write_password_file(path: Path, entries: dict[str, str]) -> None:
    """Write atomically with owner-only permissions (it holds credential hashes)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{user}:{hashed}\n" for user, hashed in entries.items()))
    tmp.chmod(0o600)
    tmp.replace(path)
