"""The registry: sites, checkpoints, staff, people, passes, vehicles, home quarantine.

Each entity follows the Base / Create / Public / table split: Base holds the fields a
client may set, the table adds keys and server-side fields, Public is what the API
returns. People never carry a raw ID number: only `id_hash` (HMAC) and `id_masked`.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import field_validator
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow
from services.core.models.roster import STAFF_ROLE_NAMES, StaffRole

SLUG = r"^[A-Za-z0-9_-]{1,64}$"


# --- sites -----------------------------------------------------------------------------
class SiteBase(SQLModel):
    name: str = Field(
        max_length=200,
        description="Display name",
        schema_extra={"examples": ["Songpingshan Garden"]},
    )
    name_zh: str | None = Field(
        default=None, max_length=200, schema_extra={"examples": ["松坪山花园"]}
    )
    kind: str = Field(
        default="residential",
        max_length=20,
        description="residential | industrial | school | commercial",
    )
    fever_threshold_c: float | None = Field(
        default=None, ge=35.0, le=42.0, description="Overrides the community fever threshold"
    )


class Site(SiteBase, table=True):
    id: str = Field(primary_key=True, max_length=64)


class SiteCreate(SiteBase):
    # `regex=` is not enforced by SQLModel on pydantic 2: `pattern` is
    id: str = Field(max_length=64, schema_extra={"pattern": SLUG})


class SitePublic(SiteBase):
    id: str


# --- checkpoints -----------------------------------------------------------------------
class CheckpointBase(SQLModel):
    site_id: str = Field(foreign_key="site.id", max_length=64, index=True)
    name: str = Field(max_length=200, schema_extra={"examples": ["North gate, pedestrian"]})
    name_zh: str | None = Field(default=None, max_length=200)
    min_staff: int = Field(default=1, ge=0, le=20, description="Staff required on duty")
    integrated_thermometer: bool = Field(
        default=True, description="The gate terminal measures temperature inside the entry"
    )
    active: bool = Field(default=True)
    commissioned_at: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="When the checkpoint went into service: coverage counts its minutes "
        "from then on (unset: since ever)",
    )
    decommissioned_at: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="When it went out of service: its minutes stop counting then (unset: "
        "still in service)",
    )


class Checkpoint(CheckpointBase, table=True):
    id: str = Field(primary_key=True, max_length=64)


class CheckpointCreate(CheckpointBase):
    # `regex=` is not enforced by SQLModel on pydantic 2: `pattern` is
    id: str = Field(max_length=64, schema_extra={"pattern": SLUG})


class CheckpointPublic(CheckpointBase):
    id: str


# --- staff -----------------------------------------------------------------------------
class StaffBase(SQLModel):
    name: str = Field(max_length=200)
    site_id: str | None = Field(default=None, foreign_key="site.id", max_length=64)
    role: str = Field(default="duty", max_length=20, description="duty | supervisor")
    active: bool = Field(default=True)
    duty_role: str = Field(
        default="community",
        max_length=20,
        description="community | police | medical | security | volunteer (roster.StaffRole)",
    )


class Staff(StaffBase, table=True):
    id: str = Field(primary_key=True, max_length=64)


class StaffCreate(StaffBase):
    # `regex=` is not enforced by SQLModel on pydantic 2: `pattern` is
    id: str = Field(max_length=64, schema_extra={"pattern": SLUG})

    @field_validator("duty_role")
    @classmethod
    def _known_duty_role(cls, value: str) -> str:
        if value not in {r.value for r in StaffRole}:
            raise ValueError(f"not a duty role ({STAFF_ROLE_NAMES})")
        return value


class StaffPublic(StaffBase):
    id: str


# --- people ----------------------------------------------------------------------------
class PersonBase(SQLModel):
    name: str = Field(max_length=200)
    site_id: str | None = Field(default=None, foreign_key="site.id", max_length=64, index=True)
    unit: str | None = Field(default=None, max_length=100, description="Building / unit / room")
    resident: bool = Field(default=True, description="Lives in the community (else: works here)")


class Person(PersonBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    id_type: str = Field(default="resident_id", max_length=20)
    id_hash: str = Field(max_length=64, unique=True, description="HMAC-SHA256 of the ID number")
    id_masked: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PersonCreate(PersonBase):
    id_number: str = Field(
        min_length=5,
        max_length=40,
        description="Hashed on the server, never stored or returned",
        schema_extra={"examples": ["11010519491231002X"]},
    )
    id_type: str = Field(default="resident_id", max_length=20)


class PersonPublic(PersonBase):
    id: int
    id_type: str
    id_masked: str


# --- QR passes -------------------------------------------------------------------------
class PassBase(SQLModel):
    person_id: int = Field(foreign_key="person.id", index=True)
    valid_from: datetime = Field(sa_type=UTCDateTime)
    valid_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Pass(PassBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=128, unique=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_reason: str | None = Field(default=None, max_length=200)


class PassCreate(PassBase):
    code: str | None = Field(default=None, max_length=128, description="Generated when omitted")


class PassPublic(PassBase):
    id: int
    code: str
    revoked_at: datetime | None
    revoked_reason: str | None


# --- vehicles --------------------------------------------------------------------------
class VehicleBase(SQLModel):
    plate: str = Field(max_length=16, schema_extra={"examples": ["粤B12345"]})
    owner_person_id: int | None = Field(default=None, foreign_key="person.id")
    site_id: str | None = Field(default=None, foreign_key="site.id", max_length=64)
    description: str | None = Field(default=None, max_length=200)
    active: bool = Field(default=True)


class Vehicle(VehicleBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    plate: str = Field(max_length=16, unique=True)


class VehicleCreate(VehicleBase):
    pass


class VehiclePublic(VehicleBase):
    id: int


# --- home quarantine -------------------------------------------------------------------
class QuarantineBase(SQLModel):
    person_id: int = Field(foreign_key="person.id", index=True)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str | None = Field(default=None, max_length=200)


class Quarantine(QuarantineBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    lifted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: str | None = Field(default=None, max_length=64)


class QuarantineCreate(QuarantineBase):
    pass


class QuarantinePublic(QuarantineBase):
    id: int
    lifted_at: datetime | None
    created_by: str | None


def normalize_plate(plate: str) -> str:
    """Plates compare without spaces, dots or dashes, upper-case."""
    return "".join(ch for ch in plate.upper() if ch not in " .-·")
