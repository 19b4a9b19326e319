"""When each class of record is deleted: the retention rule, as the API and the
dashboard show it.

Raw rows carrying personal data (passages, readings, duty and device events, dead
letters) are deleted `CPM_RETENTION_DAYS` after their event time by `cpmon retention`
(services/deploy/retention.py, whose table list this reuses); the registry, alerts and
queued messages stay until the end-of-emergency purge (`cpmon privacy purge`); the
roll-ups and the audit log hold no personal data and are kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from services.api.deps import CurrentKey, SessionDep, SettingsDep
from services.api.errors import problem_responses
from services.core.db import utcnow
from services.core.tables import table_of
from services.deploy.retention import RAW_TABLES

router = APIRouter(tags=["privacy"])

UNTIL_PURGE = "until the end-of-emergency purge (`cpmon privacy purge`)"
KEPT = "kept: holds no personal data"
# (table, what it holds, personal data, rule) for what the daily retention does not delete
LONG_LIVED = (
    ("person", "people registered: name, ID hash and masked ID, unit", True, UNTIL_PURGE),
    ("pass", "QR passes of registered people", True, UNTIL_PURGE),
    ("vehicle", "registered plates", True, UNTIL_PURGE),
    ("quarantine", "quarantine periods", True, UNTIL_PURGE),
    ("alert", "alerts: subject, last four ID characters, temperature", True, UNTIL_PURGE),
    ("outbox", "messages to handhelds and webhooks (alert details)", True, UNTIL_PURGE),
    (
        "auth_failure",
        "client addresses that sent unknown API keys",
        True,
        "forgotten once their count window and block are over (CPM_API_AUTH_WINDOW_S)",
    ),
    ("coverage_rollup", "hourly counts per checkpoint", False, KEPT),
    ("audit_log", "who did what through the API and the CLI", False, KEPT),
)
RAW_DESCRIPTIONS = {
    "passage": "each passage through a gate (masked ID, QR code, plate)",
    "reading": "each temperature reading (operator)",
    "duty_event": "staff going on and off duty",
    "device_status_event": "device online / offline",
    "dead_letter": "malformed device messages (ID-shaped numbers masked)",
}


class RecordClass(BaseModel):
    record_class: str = Field(description="The table", examples=["passage"])
    holds: str
    personal_data: bool
    kept_days: int | None = Field(
        description="Days kept after the event time; null when not deleted by age"
    )
    rule: str = Field(description="When rows of this class are deleted")
    oldest_at: datetime | None = Field(
        default=None, description="Event time of the oldest row kept (classes deleted by age)"
    )
    oldest_deleted_after: datetime | None = Field(
        default=None,
        description="When the oldest row becomes due: `oldest_at` + `kept_days` (the daily "
        "`cpmon retention` run after that deletes it)",
    )


class RetentionPolicy(BaseModel):
    retention_days: int = Field(description="CPM_RETENTION_DAYS; 0 keeps raw rows forever")
    deletes_before: datetime | None = Field(
        description="Raw rows with an event time before this are due for deletion now"
    )
    classes: list[RecordClass]


def _oldest(conn: Connection, table_name: str, column: str) -> datetime | None:
    model = next(raw.model for raw in RAW_TABLES if table_of(raw.model).name == table_name)
    table = table_of(model)
    value = conn.execute(select(func.min(table.c[column]))).scalar_one_or_none()
    return value if isinstance(value, datetime) else None


@router.get("/privacy/retention", response_model=RetentionPolicy, responses=problem_responses(401))
def retention_policy(
    session: SessionDep, settings: SettingsDep, _actor: CurrentKey
) -> RetentionPolicy:
    """Every class of stored record: whether it holds personal data, how long it is
    kept and, for the classes deleted by age, when the oldest row kept is deleted."""
    days = settings.retention_days
    conn = session.connection()
    classes = []
    for raw in RAW_TABLES:
        name = table_of(raw.model).name
        oldest = _oldest(conn, name, raw.time_column)
        classes.append(
            RecordClass(
                record_class=name,
                holds=RAW_DESCRIPTIONS.get(name, name),
                personal_data=True,
                kept_days=days or None,
                rule=f"deleted {days} days after the event time (`cpmon retention`, daily)"
                if days
                else "kept forever: CPM_RETENTION_DAYS=0",
                oldest_at=oldest,
                oldest_deleted_after=oldest + timedelta(days=days) if oldest and days else None,
            )
        )
    for name, holds, personal, rule in LONG_LIVED:
        classes.append(
            RecordClass(
                record_class=name, holds=holds, personal_data=personal, kept_days=None, rule=rule
            )
        )
    return RetentionPolicy(
        retention_days=days,
        deletes_before=utcnow() - timedelta(days=days) if days else None,
        classes=classes,
    )
