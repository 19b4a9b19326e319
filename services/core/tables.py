"""The Core tables behind the models, under one set of names, for set-based statements
(bulk inserts, upserts, joins over many rows), and the dialect-aware insert that the
upserts start from.

Modules import `passage_t` from here instead of deriving their own alias, so a table
has one name across ingest, alerts and the API.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from services.core.models import (
    Checkpoint,
    CheckpointState,
    CoverageRollup,
    DeadLetter,
    DeviceStatusEvent,
    DutyEvent,
    Pass,
    Passage,
    Person,
    Quarantine,
    Reading,
    Site,
    Staff,
    StaffPresence,
    Vehicle,
)
from services.core.models.alerts import (
    Alert,
    AlertHistory,
    DeliveryAttempt,
    Outbox,
    Silence,
    Watermark,
    WebhookRoute,
)
from services.core.models.auth import ApiKey, AuditLog, AuthFailure
from services.core.models.broker import BrokerSession
from services.core.models.events import IMPLAUSIBLE_READING as IMPLAUSIBLE_READING
from services.core.models.events import OPEN_PASSAGE as OPEN_PASSAGE  # with its table
from services.core.models.events import OPEN_READING as OPEN_READING
from services.core.models.reports import GeneratedReport
from services.core.models.robots import RobotSend
from services.core.models.roster import (
    FeverCase,
    RosterShift,
    ScreeningQuality,
    StaffCheckpoint,
    StaffingRequirement,
)


def table_of(model: Any) -> Table:
    """The Core table behind a SQLModel class."""
    table: Table = model.__table__
    return table


# registry
site_t = table_of(Site)
checkpoint_t = table_of(Checkpoint)
staff_t = table_of(Staff)
person_t = table_of(Person)
pass_t = table_of(Pass)
vehicle_t = table_of(Vehicle)
quarantine_t = table_of(Quarantine)
# events and what ingest derives from them
passage_t = table_of(Passage)
reading_t = table_of(Reading)
duty_t = table_of(DutyEvent)
status_t = table_of(DeviceStatusEvent)
state_t = table_of(CheckpointState)
presence_t = table_of(StaffPresence)
rollup_t = table_of(CoverageRollup)
dead_letter_t = table_of(DeadLetter)
# alerts
alert_t = table_of(Alert)
history_t = table_of(AlertHistory)
silence_t = table_of(Silence)
route_t = table_of(WebhookRoute)
outbox_t = table_of(Outbox)
attempt_t = table_of(DeliveryAttempt)
watermark_t = table_of(Watermark)
robot_send_t = table_of(RobotSend)
# rosters, requirements, fever cases, screening quality
staff_checkpoint_t = table_of(StaffCheckpoint)
roster_t = table_of(RosterShift)
requirement_t = table_of(StaffingRequirement)
fever_case_t = table_of(FeverCase)
screening_quality_t = table_of(ScreeningQuality)
# API
api_key_t = table_of(ApiKey)
audit_t = table_of(AuditLog)
auth_failure_t = table_of(AuthFailure)
# daily reports the scheduler generated
generated_report_t = table_of(GeneratedReport)
# ingest's record of its broker session
broker_session_t = table_of(BrokerSession)


def dialect_insert(conn: Connection, table: Table) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses (SQLite and PostgreSQL spell them
    alike, but SQLAlchemy has one construct per dialect)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
