"""What devices report: passages, readings, duty events, device status; and what ingest
derives from them: live checkpoint state, staff presence, hourly coverage roll-ups, and
the dead letters of what could not be understood.

Every event row keeps the device's own timestamp (`device_ts`) beside the one used for
analysis (`ts`): they differ only when the device clock was not trusted
(`clock_adjusted`), in which case `ts` is the time the message was received.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for events.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _big_pk() -> Column[int]:
    return Column(BigId, primary_key=True, autoincrement=True)


class EventBase(SQLModel):
    checkpoint_id: str = Field(foreign_key="checkpoint.id", max_length=64)
    msg_id: str = Field(max_length=64)
    ts: datetime = Field(sa_type=UTCDateTime)
    device_ts: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime)
    clock_adjusted: bool = Field(default=False)


class PassageBase(EventBase):
    direction: str = Field(max_length=3)
    kind: str = Field(max_length=10)
    id_type: str | None = Field(default=None, max_length=20)
    id_masked: str | None = Field(default=None, max_length=40)
    qr_pass: str | None = Field(default=None, max_length=128)
    plate: str | None = Field(default=None, max_length=16)
    registration: str = Field(max_length=24)
    quarantined: bool = Field(default=False)
    temp_c: float | None = None
    screened: bool = Field(default=False)
    screening: str | None = Field(default=None, max_length=20)


# Rows still to be paired by screening, as SQL both engines accept; the partial indexes
# below hold only these rows, and screening's queries repeat the text so that SQLite
# (which matches the terms literally) uses them.
OPEN_PASSAGE = "kind = 'person' AND screened = false"
OPEN_READING = (
    "passage_id IS NULL AND entry_msg_id IS NULL AND implausible = false AND source = 'thermometer'"
)


class Passage(PassageBase, table=True):
    """One person or vehicle through a gate, in either direction."""

    __table_args__ = (
        UniqueConstraint("checkpoint_id", "msg_id", name="uq_passage_msg"),
        Index("ix_passage_cp_dir_ts", "checkpoint_id", "direction", "ts"),
        Index("ix_passage_ts", "ts"),
        Index("ix_passage_id_hash_ts", "id_hash", "ts"),
        Index(
            "ix_passage_open_lane",
            "checkpoint_id",
            "direction",
            "ts",
            "id",
            sqlite_where=text(OPEN_PASSAGE),
            postgresql_where=text(OPEN_PASSAGE),
        ),
    )

    id: int | None = Field(default=None, sa_column=_big_pk())
    id_hash: str | None = Field(default=None, max_length=64)
    person_id: int | None = Field(default=None, foreign_key="person.id")
    pass_id: int | None = Field(default=None, foreign_key="pass.id")
    vehicle_id: int | None = Field(default=None, foreign_key="vehicle.id")
    reading_id: int | None = Field(default=None, description="The reading that screened it")


class PassagePublic(PassageBase):
    id: int
    person_id: int | None
    reading_id: int | None
    screening_temp_c: float | None = Field(
        default=None,
        description="The temperature of the reading that screened it (the gate terminal's "
        "own, or a handheld's); null when unscreened",
    )


class ReadingBase(EventBase):
    temp_c: float
    direction: str = Field(max_length=3)
    operator: str | None = Field(default=None, max_length=64)
    entry_msg_id: str | None = Field(default=None, max_length=64)
    source: str = Field(default="thermometer", max_length=12)
    implausible: bool = Field(default=False, description="Outside the plausible range")
    fever: bool = Field(default=False)


class Reading(ReadingBase, table=True):
    """One temperature measurement (handheld, gate terminal or fixed camera)."""

    __table_args__ = (
        UniqueConstraint("checkpoint_id", "msg_id", name="uq_reading_msg"),
        Index("ix_reading_cp_dir_ts", "checkpoint_id", "direction", "ts"),
        Index("ix_reading_ts", "ts"),
        # a new passage looks up the stored readings that name it (screening)
        Index("ix_reading_cp_entry", "checkpoint_id", "entry_msg_id"),
        Index(
            "ix_reading_open_lane",
            "checkpoint_id",
            "direction",
            "ts",
            "id",
            sqlite_where=text(OPEN_READING),
            postgresql_where=text(OPEN_READING),
        ),
    )

    id: int | None = Field(default=None, sa_column=_big_pk())
    passage_id: int | None = Field(default=None, description="The passage it screened")


class ReadingPublic(ReadingBase):
    id: int
    passage_id: int | None


class DutyEvent(EventBase, table=True):
    """A staff member going on or off duty at a checkpoint."""

    __tablename__ = "duty_event"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "msg_id", name="uq_duty_msg"),
        Index("ix_duty_cp_ts", "checkpoint_id", "ts"),
    )

    id: int | None = Field(default=None, sa_column=_big_pk())
    staff_id: str = Field(max_length=64)
    action: str = Field(max_length=3)
    unknown_staff: bool = Field(
        default=False, description="No such staff member: kept, flagged, not counted"
    )


class DeviceStatusEvent(SQLModel, table=True):
    """A device's retained status or will message: the history behind device uptime."""

    __tablename__ = "device_status_event"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "device_ts", "state", name="uq_status_event"),
        Index("ix_status_cp_ts", "checkpoint_id", "ts"),
    )

    id: int | None = Field(default=None, sa_column=_big_pk())
    checkpoint_id: str = Field(foreign_key="checkpoint.id", max_length=64)
    # A will message carries the time the device connected, not the time it dropped,
    # so the history is ordered by when the broker told us (`ts` = received time).
    ts: datetime = Field(sa_type=UTCDateTime, description="when ingest received it")
    device_ts: datetime = Field(sa_type=UTCDateTime, description="the device's own stamp")
    state: str = Field(max_length=8)
    firmware: str | None = Field(default=None, max_length=64)


class CheckpointState(SQLModel, table=True):
    """The live state of one checkpoint's device, kept current by ingest."""

    __tablename__ = "checkpoint_state"

    checkpoint_id: str = Field(primary_key=True, foreign_key="checkpoint.id", max_length=64)
    device_state: str = Field(default="unknown", max_length=8)
    state_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    firmware: str | None = Field(default=None, max_length=64)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    uptime_s: int | None = None
    backlog: int | None = None
    clock_skew_s: float | None = Field(default=None, description="device clock minus ours")
    clock_skew_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_passage_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_reading_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class StaffPresence(SQLModel, table=True):
    """Whether a staff member is on duty at a checkpoint, after their latest duty event."""

    __tablename__ = "staff_presence"

    checkpoint_id: str = Field(primary_key=True, foreign_key="checkpoint.id", max_length=64)
    staff_id: str = Field(primary_key=True, max_length=64)
    on_duty: bool
    since: datetime = Field(sa_type=UTCDateTime)


class CoverageRollup(SQLModel, table=True):
    """Counters per checkpoint and UTC hour, incremented in the same transaction as the
    rows they count, so the coverage API never scans raw rows."""

    __tablename__ = "coverage_rollup"

    checkpoint_id: str = Field(primary_key=True, foreign_key="checkpoint.id", max_length=64)
    bucket: datetime = Field(primary_key=True, sa_type=UTCDateTime, description="hour start, UTC")
    passages: int = 0
    persons_in: int = 0
    persons_out: int = 0
    vehicles_in: int = 0
    vehicles_out: int = 0
    screened_persons: int = 0
    registered: int = 0
    quarantine_passages: int = 0
    readings: int = 0
    fevers: int = 0
    implausible_readings: int = 0


ROLLUP_COUNTERS = (
    "passages",
    "persons_in",
    "persons_out",
    "vehicles_in",
    "vehicles_out",
    "screened_persons",
    "registered",
    "quarantine_passages",
    "readings",
    "fevers",
    "implausible_readings",
)


class DeadLetter(SQLModel, table=True):
    """A message that could not be understood, kept with the reason so operators can
    see what devices send wrong. The payload is truncated and any ID number masked."""

    __tablename__ = "dead_letter"
    __table_args__ = (Index("ix_dead_letter_received", "received_at"),)

    id: int | None = Field(default=None, sa_column=_big_pk())
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    topic: str = Field(max_length=512)
    checkpoint_id: str | None = Field(default=None, max_length=64)
    kind: str | None = Field(default=None, max_length=32)
    reason: str = Field(max_length=32, index=True)
    detail: str = Field(max_length=500)
    payload: str = Field(description="truncated, ID numbers masked")
    payload_bytes: int
