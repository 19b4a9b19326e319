"""API keys and the audit log of the HTTP API.

A key is shown once, when it is created; only its SHA-256 is stored. A plain hash is
enough (no salt, no slow KDF) because keys are 32 random bytes, not passwords a person
chose: there is nothing to guess.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.enums import ROLE_NAMES

ROLES = ("admin", "officer", "duty", "viewer", "inspector")


class ApiKeyBase(SQLModel):
    name: str = Field(
        max_length=100, description="Who or what uses the key", schema_extra={"examples": ["ops"]}
    )
    role: str = Field(max_length=10, description=ROLE_NAMES)
    checkpoint_ids: str | None = Field(
        default=None,
        max_length=2000,
        description="duty keys: comma-separated checkpoints the key may act on",
    )


class ApiKey(ApiKeyBase, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    key_hash: str = Field(max_length=64, unique=True, description="sha256 hex of the key")
    key_prefix: str = Field(max_length=12, description="first characters, to recognise a key")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def checkpoint_scope(self) -> frozenset[str] | None:
        """None: every checkpoint; otherwise the checkpoints a duty key may act on."""
        if not self.checkpoint_ids:
            return None
        return frozenset(cp for cp in self.checkpoint_ids.split(",") if cp)


class AuditLog(SQLModel, table=True):
    """One write (or privacy-sensitive read, such as a contact-tracing query) via the API."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    api_key_id: int | None = Field(default=None, index=True)
    role: str | None = Field(default=None, max_length=10)
    action: str = Field(max_length=64, description="e.g. person.create, alert.acknowledge")
    resource: str = Field(max_length=200, description="e.g. person/42")
    detail: str | None = Field(default=None, description="JSON; never a raw ID number")
    request_id: str | None = Field(default=None, max_length=64)
