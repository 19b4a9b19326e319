"""How a checkpoint should run: who may serve where, the roster of shifts with named
people, the staffing requirements per time of day, fever cases (a fever alert awaiting
a re-check and a disposition) and the latest screening-quality verdict per lane.

A staff member's `duty_role` (community, police, medical, security, volunteer) lives on
the `staff` table itself (registry.py); the requirement's `roles` name one required
member per entry, so ["police", "medical", "community"] asks for one of each.
Requirement times are minutes of the local day (settings.timezone); an `end_minute`
at or before `start_minute` runs past midnight.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import field_validator
from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")


class StaffRole(StrEnum):
    """What a staff member does at a checkpoint (the article's community: 36 staff, 58
    volunteers, with police and medical staff on the night shift)."""

    COMMUNITY = "community"  # community (居委/社区) staff
    POLICE = "police"
    MEDICAL = "medical"
    SECURITY = "security"  # property-management security guards
    VOLUNTEER = "volunteer"


STAFF_ROLE_NAMES = " | ".join(StaffRole)


class FeverDisposition(StrEnum):
    """How a fever case ended: the fixed list a resolve must choose from."""

    RECHECK_NORMAL = "recheck_normal"  # the handheld re-check was normal
    SENT_TO_FEVER_CLINIC = "sent_to_fever_clinic"  # escorted / sent to the fever clinic
    CALLED_120 = "called_120"  # ambulance called
    SENT_TO_HEALTH_STATION = "sent_to_health_station"  # the community health station
    HOME_OBSERVATION = "home_observation"  # sent home under observation (re-check later)


DISPOSITION_NAMES = " | ".join(FeverDisposition)
MAX_REQUIRED_ROLES = 10


# --- who may serve where ---------------------------------------------------------------
class StaffCheckpoint(SQLModel, table=True):
    """A checkpoint a staff member may serve (none listed: any checkpoint of the site)."""

    __tablename__ = "staff_checkpoint"

    staff_id: str = Field(primary_key=True, foreign_key="staff.id", max_length=64)
    checkpoint_id: str = Field(primary_key=True, foreign_key="checkpoint.id", max_length=64)


# --- the roster ------------------------------------------------------------------------
class RosterShiftBase(SQLModel):
    checkpoint_id: str = Field(foreign_key="checkpoint.id", max_length=64)
    staff_id: str = Field(foreign_key="staff.id", max_length=64)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    label: str = Field(default="", max_length=20, description="night | day | evening, or free text")


class RosterShift(RosterShiftBase, table=True):
    """One named person rostered at one checkpoint for one shift."""

    __tablename__ = "roster_shift"
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "staff_id", "starts_at", name="uq_roster_shift"),
        Index("ix_roster_shift_cp_starts", "checkpoint_id", "starts_at"),
        Index("ix_roster_shift_starts", "starts_at"),
    )

    id: int | None = Field(default=None, primary_key=True)


class RosterShiftCreate(RosterShiftBase):
    pass


class RosterShiftPublic(RosterShiftBase):
    id: int


# --- requirements ----------------------------------------------------------------------
class StaffingRequirementBase(SQLModel):
    checkpoint_id: str | None = Field(
        default=None,
        foreign_key="checkpoint.id",
        max_length=64,
        description="null: the default for every checkpoint without its own",
    )
    label: str = Field(default="", max_length=40, schema_extra={"examples": ["night"]})
    start_minute: int = Field(ge=0, le=1439, description="Local minute of the day it starts")
    end_minute: int = Field(
        ge=0, le=1440, description="Local minute it ends; at or before the start: next day"
    )
    min_on_duty: int = Field(default=1, ge=0, le=50)
    roles: list[str] = Field(
        default_factory=list,
        sa_type=JSON,
        description="One required member per entry: community | police | medical | ...",
    )
    active: bool = Field(default=True)


class StaffingRequirement(StaffingRequirementBase, table=True):
    __tablename__ = "staffing_requirement"
    __table_args__ = (Index("ix_staffing_requirement_cp", "checkpoint_id"),)

    id: int | None = Field(default=None, primary_key=True)


class StaffingRequirementCreate(StaffingRequirementBase):
    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        if len(value) > MAX_REQUIRED_ROLES:
            raise ValueError(f"at most {MAX_REQUIRED_ROLES} roles")
        unknown = [r for r in value if r not in {role.value for role in StaffRole}]
        if unknown:
            raise ValueError(f"not a duty role: {unknown[0]!r} ({STAFF_ROLE_NAMES})")
        return value


class StaffingRequirementPublic(StaffingRequirementBase):
    id: int


# --- fever cases -----------------------------------------------------------------------
class FeverCase(SQLModel, table=True):
    """A fever alert as a case: the re-check it asks for and how it was decided."""

    __tablename__ = "fever_case"
    __table_args__ = (
        Index("ix_fever_case_cp_fever", "checkpoint_id", "fever_at"),
        Index("ix_fever_case_decided", "decided_at"),
    )

    alert_id: int = Field(
        sa_column=Column(BigId, ForeignKey("alert.id"), primary_key=True, autoincrement=False)
    )
    checkpoint_id: str = Field(foreign_key="checkpoint.id", max_length=64)
    direction: str = Field(default="in", max_length=3)
    reading_id: int | None = Field(default=None, sa_type=BigId, description="the fever reading")
    fever_at: datetime = Field(sa_type=UTCDateTime)
    temp_c: float
    recheck_due_at: datetime = Field(sa_type=UTCDateTime)
    recheck_reading_id: int | None = Field(default=None, sa_type=BigId)
    recheck_temp_c: float | None = None
    recheck_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disposition: str | None = Field(default=None, max_length=32)
    decided_by: str | None = Field(default=None, max_length=64, description="staff id")
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class FeverCasePublic(SQLModel):
    alert_id: int
    checkpoint_id: str
    direction: str
    fever_at: datetime
    temp_c: float
    recheck_due_at: datetime
    recheck_temp_c: float | None
    recheck_at: datetime | None
    disposition: str | None
    decided_by: str | None
    decided_at: datetime | None


# --- screening quality -----------------------------------------------------------------
class ScreeningQuality(SQLModel, table=True):
    """The latest screening-quality verdict per checkpoint lane, kept by the timed rules
    for the board: ok | suspect | no_data, with the statistics behind it."""

    __tablename__ = "screening_quality"

    checkpoint_id: str = Field(primary_key=True, foreign_key="checkpoint.id", max_length=64)
    direction: str = Field(primary_key=True, max_length=3)
    status: str = Field(max_length=10)
    readings: int = 0
    evaluated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
