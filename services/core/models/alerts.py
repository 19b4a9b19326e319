"""Alerts and their delivery: the alert itself, its audit history, silences, webhook
routes, the durable outbox, each delivery attempt, and the watermarks of the alert
service (how far it has read each event table).

One open alert per dedup key is enforced by the database: `open_key` holds the dedup key
while the alert is open or acknowledged and is NULL once resolved, under a plain UNIQUE
constraint (NULLs never collide, on SQLite and PostgreSQL alike). Repeats are an
`INSERT ... ON CONFLICT (open_key) DO UPDATE`, never a read-then-write.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")


def _big_pk() -> Column[int]:
    return Column(BigId, primary_key=True, autoincrement=True)


class AlertType(StrEnum):
    FEVER = "fever"
    QUARANTINE_BREACH = "quarantine_breach"
    UNREGISTERED_ENTRY = "unregistered_entry"
    STAFFING_GAP = "staffing_gap"
    DEVICE_OFFLINE = "device_offline"
    UNSCREENED_PASSAGE = "unscreened_passage"
    SENSOR_FAULT = "sensor_fault"
    CLOCK_SKEW = "clock_skew"
    NO_SHOW = "no_show"
    LEFT_POST = "left_post"
    SCREENING_SUSPECT = "screening_suspect"
    RECTIFICATION_OVERDUE = "rectification_overdue"  # supervision: finding past deadline
    ENTERPRISE_UNCHECKED = "enterprise_unchecked"  # resumed, not checked the same day


class Severity(StrEnum):
    WARNING = "warning"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self]


OPEN_ALERT = "open_key IS NOT NULL"  # open or acknowledged: not resolved

SEVERITY_RANK = {Severity.WARNING: 1, Severity.MAJOR: 2, Severity.CRITICAL: 3}


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertEvent(StrEnum):
    """What happened to an alert: the `action` of its history and of each message sent."""

    OPENED = "opened"
    REPEATED = "repeated"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


# --- alerts ----------------------------------------------------------------------------
class AlertBase(SQLModel):
    type: str = Field(max_length=32, description="fever | quarantine_breach | ...")
    severity: str = Field(max_length=10, description="warning | major | critical")
    checkpoint_id: str = Field(foreign_key="checkpoint.id", max_length=64)
    site_id: str = Field(max_length=64, index=True)
    subject: str = Field(
        default="",
        max_length=128,
        description="What the alert is about within its checkpoint: a person hash prefix "
        "(h:...), a passage (passage:ID), a staff id, or '' for the checkpoint itself",
    )
    summary: str = Field(max_length=500, description="One human line")
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Alert(AlertBase, table=True):
    __table_args__ = (
        UniqueConstraint("open_key", name="uq_alert_open_key"),
        Index("ix_alert_status_escalation", "status", "next_escalation_at"),
        Index("ix_alert_cp_opened", "checkpoint_id", "opened_at"),
        Index("ix_alert_opened", "opened_at"),
        # the open alerts of a type (open fevers on every batch of readings, the timed
        # rules' types every tick), never the history of resolved ones
        Index(
            "ix_alert_open_type",
            "type",
            sqlite_where=text(OPEN_ALERT),
            postgresql_where=text(OPEN_ALERT),
        ),
    )

    id: int | None = Field(default=None, sa_column=_big_pk())
    dedup_key: str = Field(max_length=255, description="type|checkpoint|subject", index=True)
    open_key: str | None = Field(
        default=None, max_length=255, description="= dedup_key until resolved, then NULL"
    )
    status: str = Field(default=AlertStatus.OPEN, max_length=16)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    occurrences: int = Field(default=1)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: str | None = Field(default=None, max_length=64)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = Field(default=None, max_length=64)
    outcome: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=1000)
    silenced: bool = Field(default=False, description="Recorded but not delivered")
    escalation_level: int = Field(default=0)
    next_escalation_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AlertPublic(AlertBase):
    id: int
    dedup_key: str
    status: str
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: str | None
    note: str | None
    silenced: bool
    escalation_level: int
    next_escalation_at: datetime | None


class AlertHistory(SQLModel, table=True):
    """Every change of every alert, in order: the audit trail, and what the API's SSE
    stream tails (poll `id > last_seen_id`)."""

    __tablename__ = "alert_history"
    __table_args__ = (Index("ix_alert_history_alert", "alert_id", "id"),)

    id: int | None = Field(default=None, sa_column=_big_pk())
    alert_id: int = Field(sa_type=BigId, foreign_key="alert.id")
    at: datetime = Field(sa_type=UTCDateTime)
    action: str = Field(max_length=16, description="opened | repeated | acknowledged | ...")
    status: str = Field(max_length=16, description="The alert's status after the change")
    actor: str = Field(max_length=64, description="'system' or a staff / API user id")
    note: str | None = Field(default=None, max_length=1000)


class AlertHistoryPublic(SQLModel):
    id: int
    alert_id: int
    at: datetime
    action: str
    status: str
    actor: str
    note: str | None


# --- silences --------------------------------------------------------------------------
class SilenceBase(SQLModel):
    site_id: str | None = Field(default=None, foreign_key="site.id", max_length=64)
    checkpoint_id: str | None = Field(default=None, foreign_key="checkpoint.id", max_length=64)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(min_length=1, max_length=500, schema_extra={"examples": ["maintenance"]})


class Silence(SilenceBase, table=True):
    """A checkpoint or a whole site whose alerts are recorded but not delivered."""

    __table_args__ = (Index("ix_silence_window", "ends_at", "starts_at"),)

    id: int | None = Field(default=None, primary_key=True)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lifted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    lifted_by: str | None = Field(default=None, max_length=64)


class SilenceCreate(SilenceBase):
    pass


class SilencePublic(SilenceBase):
    id: int
    created_by: str
    created_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None


# --- webhook routes --------------------------------------------------------------------
class WebhookRouteBase(SQLModel):
    name: str = Field(max_length=100, schema_extra={"examples": ["North gate WeCom bot"]})
    url: str = Field(max_length=1000, schema_extra={"examples": ["https://hooks.example/a"]})
    site_id: str | None = Field(default=None, foreign_key="site.id", max_length=64)
    checkpoint_id: str | None = Field(default=None, foreign_key="checkpoint.id", max_length=64)
    min_severity: str = Field(default=Severity.WARNING, max_length=10)
    types: list[str] | None = Field(
        default=None, sa_type=JSON, description="Alert types to send; null for all"
    )
    escalation: bool = Field(
        default=False,
        description="A supervisors' route: receives escalations (alerts not acknowledged "
        "in time) instead of first notices",
    )
    enabled: bool = Field(default=True)
    kind: str = Field(
        default="standard",
        max_length=16,
        description="standard (signed JSON) | wecom | dingtalk | feishu (group robots)",
    )
    language: str = Field(default="zh-CN", max_length=8, description="Robot messages: zh-CN | en")
    mentions: list[str] | None = Field(
        default=None,
        sa_type=JSON,
        description="Who a robot @-mentions on critical alerts: phone numbers (WeCom, "
        "DingTalk) or Feishu user ids (ou_..., or all)",
    )


class WebhookRoute(WebhookRouteBase, table=True):
    __tablename__ = "webhook_route"

    id: int | None = Field(default=None, primary_key=True)
    secret: str = Field(
        max_length=200,
        description="whsec_<base64> (standard); the robot's signing secret, or '' (robots)",
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookRouteCreate(WebhookRouteBase):
    secret: str | None = Field(
        default=None,
        max_length=200,
        description="standard: whsec_<base64>, generated when omitted; dingtalk/feishu: "
        "the robot's signing secret (if it has one); wecom: none",
    )


class WebhookRoutePublic(WebhookRouteBase):
    id: int
    created_at: datetime


# --- delivery --------------------------------------------------------------------------
class Outbox(SQLModel, table=True):
    """A message to deliver, written in the same transaction as the alert change, so a
    crash between the two is impossible and a restart resumes delivery."""

    __table_args__ = (
        UniqueConstraint("message_id", name="uq_outbox_message_id"),
        Index("ix_outbox_state_due", "state", "next_attempt_at"),
        Index("ix_outbox_lane", "lane", "state", "id"),
    )

    id: int | None = Field(default=None, sa_column=_big_pk())
    channel: str = Field(max_length=16, description="mqtt | webhook")
    route_id: int | None = Field(default=None, foreign_key="webhook_route.id")
    alert_id: int | None = Field(
        default=None,
        sa_type=BigId,
        foreign_key="alert.id",
        description="None for an announcement that is no alert (a daily report)",
    )
    checkpoint_id: str = Field(max_length=64)
    lane: str = Field(max_length=120, description="channel:route:checkpoint; delivered in id order")
    event: str = Field(max_length=16)
    payload: str
    message_id: str = Field(max_length=64, description="webhook-id; receivers dedup on it")
    state: str = Field(
        default="pending", max_length=10, description="pending|delivered|failed|cancelled"
    )
    attempts: int = Field(default=0)
    created_at: datetime = Field(sa_type=UTCDateTime)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempt"
    __table_args__ = (Index("ix_delivery_attempt_outbox", "outbox_id"),)

    id: int | None = Field(default=None, sa_column=_big_pk())
    outbox_id: int = Field(sa_type=BigId, foreign_key="outbox.id")
    at: datetime = Field(sa_type=UTCDateTime)
    ok: bool
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    duration_ms: float


class Watermark(SQLModel, table=True):
    """How far the alert service has read one event table. `version` makes the update a
    compare-and-set; `gaps` are ids skipped over that may still commit (PostgreSQL hands
    out ids before commit), re-checked until they expire."""

    name: str = Field(primary_key=True, max_length=64)
    last_id: int = Field(default=0, sa_type=BigId)
    version: int = Field(default=0)
    gaps: list[list[Any]] = Field(default_factory=list, sa_type=JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
