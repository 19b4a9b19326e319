"""API keys: creation, lookup by hash, roles; and the audit trail of writes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from services.core.db import session_scope, utcnow
from services.core.enums import Role
from services.core.models.auth import ApiKey, AuditLog

KEY_PREFIX = "cpm_"
__all__ = ["Role"]  # re-exported: callers create keys with a Role


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """32 random bytes, URL-safe, with a prefix that makes a leaked key easy to grep for."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def normalise_scope(checkpoints: list[str] | None) -> str | None:
    cleaned = sorted({cp.strip() for cp in checkpoints or [] if cp.strip()})
    return ",".join(cleaned) or None


def create_key(
    session: Session, role: Role, name: str, checkpoints: list[str] | None = None
) -> tuple[ApiKey, str]:
    """Add a key to the session; returns the row and the key itself (shown once)."""
    key = new_key()
    row = ApiKey(
        name=name,
        role=role.value,
        checkpoint_ids=normalise_scope(checkpoints) if role is Role.DUTY else None,
        key_hash=hash_key(key),
        key_prefix=key[:12],
    )
    session.add(row)
    session.flush()
    return row, key


def create_key_in(
    engine: Engine, role: Role, name: str, checkpoints: list[str] | None = None
) -> tuple[int, str]:
    with session_scope(engine) as session:
        row, key = create_key(session, role, name, checkpoints)
        assert row.id is not None
        write_audit(
            session,
            Actor(key_id=None, role="cli", name="cpmon apikey", scope=None, request_id=None),
            "api_key.create",
            f"api_key/{row.id}",
            {"role": role.value, "name": name, "checkpoints": row.checkpoint_ids},
        )
        return row.id, key


def find_key(session: Session, key: str) -> ApiKey | None:
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row


def key_active(engine: Engine, key_id: int) -> bool:
    """Whether the key still exists unrevoked (long-lived streams ask again)."""
    with Session(engine) as session:
        row = session.get(ApiKey, key_id)
        return row is not None and row.revoked_at is None


# --- dashboard sessions -----------------------------------------------------------------
# The dashboard trades its key once (`POST /api/v1/session`, Bearer) for this token in an
# HttpOnly SameSite=Strict cookie: the key is kept neither in localStorage nor in URLs.
# The token names the key and an expiry and is signed with a key derived from the HMAC
# secret and bound to the key's hash; each use looks the key up again, so a revoked key's
# sessions end at once.
SESSION_COOKIE = "cpm_session"
_SESSION_LABEL = b"cpm-dashboard-session-v1"


def _session_mac(secret: str, key_id: int, expires: int, key_hash: str) -> str:
    signing_key = hmac.new(secret.encode("utf-8"), _SESSION_LABEL, hashlib.sha256).digest()
    mac = hmac.new(signing_key, f"{key_id}.{expires}.{key_hash}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def session_token(secret: str, row: ApiKey, ttl_s: int, now: float | None = None) -> str:
    assert row.id is not None
    expires = int((time.time() if now is None else now) + ttl_s)
    return f"v1.{row.id}.{expires}.{_session_mac(secret, row.id, expires, row.key_hash)}"


def session_expiry(token: str) -> float:
    """The expiry written in a token `find_session_key` accepted."""
    return float(token.split(".")[2])


def find_session_key(
    session: Session, secret: str, token: str, now: float | None = None
) -> ApiKey | None:
    """The unrevoked key a session token was made for, or None (bad, forged, expired)."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    key_id, expires = int(parts[1]), int(parts[2])
    if key_id > 2**31 - 1 or expires < (time.time() if now is None else now):
        return None
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return None
    expected = _session_mac(secret, key_id, expires, row.key_hash)
    return row if hmac.compare_digest(expected, parts[3]) else None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is making a request: the key's id, role and checkpoint scope."""

    key_id: int | None
    role: str
    name: str
    scope: frozenset[str] | None  # duty keys: checkpoints they may act on
    request_id: str | None
    session_expires_s: float | None = None  # a dashboard session's end (epoch seconds)

    def may_act_on(self, checkpoint_id: str | None) -> bool:
        if self.role != Role.DUTY:
            return True
        return self.scope is not None and checkpoint_id in self.scope


def audit_values(
    actor: Actor, action: str, resource: str, detail: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "at": utcnow(),
        "api_key_id": actor.key_id,
        "role": actor.role,
        "action": action,
        "resource": resource[:200],
        "detail": json.dumps(detail, ensure_ascii=False, default=str) if detail else None,
        "request_id": actor.request_id,
    }


def write_audit(
    session: Session,
    actor: Actor,
    action: str,
    resource: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a write in the same transaction as the write itself."""
    session.add(AuditLog(**audit_values(actor, action, resource, detail)))
