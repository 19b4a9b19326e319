"""Supervision with standardized checklists (the article's "标准化清单" method).

Checklist templates are data: a template (one checklist, one version) holds major items
and their minor items; inspectors mark each minor item √ (pass) or × (fail). Enterprises
report resumption of work and are checked on site the same day; five supervision teams
make unannounced look-back inspections of residential compounds and industrial parks.
A signed inspection is immutable: a correction is a new inspection naming the old one.
Findings (one per ×) are fixed on the spot or by a deadline, and a later inspection of
the same target that marks the item √ closes them.

Each entity follows the Base / Create / Public / table split of the registry.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.core.db import UTCDateTime, utcnow

SLUG = r"^[A-Za-z0-9_-]{1,64}$"
ITEM_CODE = r"^[A-Za-z0-9_.-]{1,32}$"


class TargetKind(StrEnum):
    """What a checklist applies to; the first two are registry sites."""

    RESIDENTIAL = "residential"  # 住宅小区
    INDUSTRIAL = "industrial"  # 工业园区
    ENTERPRISE = "enterprise"  # 复工企业


class SensorMetric(StrEnum):
    """Items the system judges itself from the coverage figures (docs/metrics.md)."""

    STAFFING = "staffing"  # checkpoints staffed 24 h
    SCREENING = "screening"  # 100 % temperature checks
    REGISTRATION = "registration"  # 100 % registration of people and vehicles
    UPTIME = "uptime"  # devices online


class Mark(StrEnum):
    PASS = "pass"  # √
    FAIL = "fail"  # ×


class InspectionKind(StrEnum):
    LOOKBACK = "lookback"  # 回头看: unannounced visit of a compound or park
    RESUMPTION = "resumption"  # 复工核查: same-day check of a resumed enterprise
    REINSPECTION = "reinspection"  # 复查: checks the rectification of findings
    CORRECTION = "correction"  # replaces a signed inspection that was wrong


class FindingStatus(StrEnum):
    FIXED_ON_SPOT = "fixed_on_spot"  # 立行立改
    OPEN = "open"  # to be fixed by the deadline
    CLOSED = "closed"  # a re-inspection marked the item √


class ResumptionStatus(StrEnum):
    CLOSED = "closed"  # not yet resumed
    RESUMED = "resumed"


class VisitKind(StrEnum):
    LOOKBACK = "lookback"
    RESUMPTION = "resumption"


# --- checklist templates ---------------------------------------------------------------
class ChecklistTemplateBase(SQLModel):
    code: str = Field(
        max_length=64,
        description="The checklist this is a version of",
        schema_extra={"examples": ["residential"], "pattern": SLUG},
    )
    target_kind: str = Field(max_length=20, description="residential | industrial | enterprise")
    name: str = Field(max_length=200, schema_extra={"examples": ["Residential compound"]})
    name_zh: str = Field(max_length=200, schema_extra={"examples": ["住宅小区防疫督查清单"]})


class ChecklistTemplate(ChecklistTemplateBase, table=True):
    __tablename__ = "checklist_template"
    __table_args__ = (UniqueConstraint("code", "version", name="uq_checklist_template_version"),)

    id: int | None = Field(default=None, primary_key=True)
    version: int = Field(ge=1)
    active: bool = Field(default=True, description="The version new inspections use")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ChecklistItemBase(SQLModel):
    code: str = Field(max_length=32, schema_extra={"examples": ["R1.2"], "pattern": ITEM_CODE})
    text_zh: str = Field(max_length=500)
    text_en: str = Field(max_length=500)
    sensor_metric: str | None = Field(
        default=None,
        max_length=20,
        description="Minor items only: staffing | screening | registration | uptime",
    )


class ChecklistItem(ChecklistItemBase, table=True):
    """A major item (parent_code NULL) or one of its minor items, which are marked."""

    __tablename__ = "checklist_item"
    __table_args__ = (UniqueConstraint("template_id", "code", name="uq_checklist_item_code"),)

    id: int | None = Field(default=None, primary_key=True)
    template_id: int = Field(foreign_key="checklist_template.id", index=True)
    parent_code: str | None = Field(default=None, max_length=32)
    position: int = Field(default=0)


class MinorItemCreate(ChecklistItemBase):
    sensor_metric: SensorMetric | None = None


class MajorItemCreate(SQLModel):
    code: str = Field(max_length=32, schema_extra={"pattern": ITEM_CODE})
    text_zh: str = Field(max_length=500)
    text_en: str = Field(max_length=500)
    items: list[MinorItemCreate] = Field(min_length=1, max_length=50)


class ChecklistTemplateCreate(ChecklistTemplateBase):
    """A new version of checklist `code` (version = latest + 1; it becomes active)."""

    target_kind: TargetKind
    majors: list[MajorItemCreate] = Field(min_length=1, max_length=50)


class ChecklistItemPublic(ChecklistItemBase):
    id: int
    parent_code: str | None
    position: int


class ChecklistTemplatePublic(ChecklistTemplateBase):
    id: int
    version: int
    active: bool
    created_at: datetime
    items: list[ChecklistItemPublic] = []


# --- enterprises -----------------------------------------------------------------------
class EnterpriseBase(SQLModel):
    name: str = Field(max_length=200, schema_extra={"examples": ["松坪山精密制造有限公司"]})
    credit_code: str = Field(
        min_length=18,
        max_length=18,
        description="Unified social credit code (统一社会信用代码), check digit verified",
        schema_extra={"examples": ["91440300MA5G0KUF48"]},
    )
    address: str | None = Field(default=None, max_length=300)
    site_id: str = Field(foreign_key="site.id", max_length=64, index=True)
    contact_name: str | None = Field(default=None, max_length=100)
    contact_phone: str | None = Field(default=None, max_length=32)


class Enterprise(EnterpriseBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    credit_code: str = Field(max_length=18, unique=True)
    status: str = Field(default=ResumptionStatus.CLOSED, max_length=16)
    resumed_on: date | None = Field(default=None, description="Local day work resumed")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EnterpriseCreate(EnterpriseBase):
    resumed_on: date | None = Field(default=None, description="Set: the enterprise has resumed")


class EnterprisePublic(EnterpriseBase):
    id: int
    status: str
    resumed_on: date | None


# --- supervision teams -----------------------------------------------------------------
class SupervisionTeamBase(SQLModel):
    name: str = Field(max_length=100, schema_extra={"examples": ["Team 1"]})
    name_zh: str | None = Field(
        default=None, max_length=100, schema_extra={"examples": ["第一督查组"]}
    )
    active: bool = Field(default=True)


class SupervisionTeam(SupervisionTeamBase, table=True):
    __tablename__ = "supervision_team"

    id: str = Field(primary_key=True, max_length=64)


class SupervisionTeamCreate(SupervisionTeamBase):
    id: str = Field(max_length=64, schema_extra={"pattern": SLUG})


class TeamMemberBase(SQLModel):
    name: str = Field(max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    staff_id: str | None = Field(
        default=None, max_length=64, description="The registry staff id, when one exists"
    )
    leader: bool = Field(default=False)


class TeamMember(TeamMemberBase, table=True):
    __tablename__ = "team_member"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(foreign_key="supervision_team.id", max_length=64, index=True)


class TeamMemberCreate(TeamMemberBase):
    pass


class TeamMemberPublic(TeamMemberBase):
    id: int
    team_id: str


class SupervisionTeamPublic(SupervisionTeamBase):
    id: str
    members: list[TeamMemberPublic] = []


# --- inspections -----------------------------------------------------------------------
class Inspection(SQLModel, table=True):
    """One visit by a team to a site or an enterprise, marked on one template version."""

    __table_args__ = (
        Index("ix_inspection_site_at", "site_id", "inspected_at"),
        Index("ix_inspection_enterprise_at", "enterprise_id", "inspected_at"),
        Index("ix_inspection_at", "inspected_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16, description="lookback | resumption | reinspection | ...")
    team_id: str = Field(foreign_key="supervision_team.id", max_length=64)
    template_id: int = Field(foreign_key="checklist_template.id")
    site_id: str = Field(
        foreign_key="site.id", max_length=64, description="The site, or the enterprise's"
    )
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id")
    inspected_at: datetime = Field(sa_type=UTCDateTime)
    inspector: str = Field(max_length=100, description="Who marked the items")
    notes: str | None = Field(default=None, max_length=2000)
    corrects_id: int | None = Field(
        default=None, foreign_key="inspection.id", description="The signed inspection this corrects"
    )
    period_start: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="Start of the period the system's verdict covers (the last inspection)",
    )
    passed: bool | None = Field(default=None, description="Every item √; set when signed")
    signer_name: str | None = Field(default=None, max_length=100)
    signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: int | None = Field(default=None, description="API key id")


class InspectionMark(SQLModel, table=True):
    """The inspector's √/× for one minor item, next to the system's own verdict."""

    __tablename__ = "inspection_mark"
    __table_args__ = (UniqueConstraint("inspection_id", "item_id", name="uq_inspection_mark_item"),)

    id: int | None = Field(default=None, primary_key=True)
    inspection_id: int = Field(foreign_key="inspection.id", index=True)
    item_id: int = Field(foreign_key="checklist_item.id")
    item_code: str = Field(max_length=32)
    mark: str = Field(max_length=8, description="pass | fail")
    reason: str | None = Field(default=None, max_length=500, description="Required for ×")
    system_verdict: str | None = Field(
        default=None, max_length=8, description="pass | fail | NULL (no data / not judged)"
    )
    system_value: float | None = Field(default=None, description="The coverage ratio judged")
    disagreement: bool = Field(default=False, description="Inspector √ while the data says ×")
    fixed_on_spot: bool = Field(default=False, description="× fixed during the visit")
    deadline: datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="× to be fixed by then"
    )


class InspectionAttachment(SQLModel, table=True):
    """A validated PNG: the responsible person's signature, or a photo of a finding."""

    __tablename__ = "inspection_attachment"

    id: int | None = Field(default=None, primary_key=True)
    inspection_id: int = Field(foreign_key="inspection.id", index=True)
    kind: str = Field(max_length=12, description="signature | photo")
    width: int
    height: int
    size: int
    sha256: str = Field(max_length=64)
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MarkIn(SQLModel):
    item_code: str = Field(max_length=32, schema_extra={"pattern": ITEM_CODE})
    mark: Mark
    reason: str | None = Field(default=None, max_length=500)
    fixed_on_spot: bool = Field(default=False, description="× fixed during the visit")
    deadline: datetime | None = Field(default=None, description="× to be fixed by then")


class InspectionCreate(SQLModel):
    kind: InspectionKind = InspectionKind.LOOKBACK
    team_id: str = Field(max_length=64)
    template_id: int | None = Field(
        default=None, description="Default: the active template for the target's kind"
    )
    site_id: str | None = Field(default=None, max_length=64)
    enterprise_id: int | None = None
    inspected_at: datetime | None = Field(default=None, description="Default: now")
    inspector: str = Field(min_length=1, max_length=100)
    notes: str | None = Field(default=None, max_length=2000)
    corrects_id: int | None = None
    marks: list[MarkIn] = Field(default_factory=list, max_length=100)


class InspectionUpdate(SQLModel):
    """Edits of a draft; a signed inspection refuses them (409)."""

    inspector: str | None = Field(default=None, min_length=1, max_length=100)
    notes: str | None = Field(default=None, max_length=2000)
    marks: list[MarkIn] | None = Field(default=None, max_length=100)


class InspectionMarkPublic(SQLModel):
    item_code: str
    mark: str
    reason: str | None
    fixed_on_spot: bool
    deadline: datetime | None
    system_verdict: str | None
    system_value: float | None
    disagreement: bool


class InspectionPublic(SQLModel):
    id: int
    kind: str
    team_id: str
    template_id: int
    site_id: str
    enterprise_id: int | None
    inspected_at: datetime
    inspector: str
    notes: str | None
    corrects_id: int | None
    corrected_by: list[int] = []
    period_start: datetime | None
    passed: bool | None
    signer_name: str | None
    signed_at: datetime | None
    signed: bool
    marks: list[InspectionMarkPublic] = []
    photo_ids: list[int] = []


# --- findings and their rectification -------------------------------------------------
class Finding(SQLModel, table=True):
    """A × and its rectification (整改): fixed on the spot, or a deadline and a re-check."""

    __table_args__ = (Index("ix_finding_status_deadline", "status", "deadline"),)

    id: int | None = Field(default=None, primary_key=True)
    inspection_id: int = Field(foreign_key="inspection.id", index=True)
    item_code: str = Field(max_length=32)
    template_code: str = Field(max_length=64)
    site_id: str = Field(foreign_key="site.id", max_length=64, index=True)
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id")
    reason: str = Field(max_length=500)
    status: str = Field(max_length=16, description="fixed_on_spot | open | closed")
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by_inspection_id: int | None = Field(default=None, foreign_key="inspection.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FindingPublic(SQLModel):
    id: int
    inspection_id: int
    item_code: str
    template_code: str
    site_id: str
    enterprise_id: int | None
    reason: str
    status: str
    deadline: datetime | None
    closed_at: datetime | None
    closed_by_inspection_id: int | None
    overdue: bool = False


# --- the plan: look-back visits and same-day checks -----------------------------------
class SupervisionVisit(SQLModel, table=True):
    """A planned visit: unannounced look-back of a site, or a resumed enterprise's check."""

    __tablename__ = "supervision_visit"
    __table_args__ = (
        Index("ix_supervision_visit_team_at", "team_id", "planned_at"),
        Index("ix_supervision_visit_enterprise", "enterprise_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16, description="lookback | resumption")
    team_id: str = Field(foreign_key="supervision_team.id", max_length=64)
    site_id: str = Field(foreign_key="site.id", max_length=64, index=True)
    enterprise_id: int | None = Field(default=None, foreign_key="enterprise.id")
    planned_at: datetime = Field(sa_type=UTCDateTime)
    due_by: datetime = Field(sa_type=UTCDateTime, description="Latest acceptable visit time")
    inspection_id: int | None = Field(default=None, foreign_key="inspection.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SupervisionVisitPublic(SQLModel):
    id: int
    kind: str
    team_id: str
    site_id: str
    enterprise_id: int | None
    planned_at: datetime
    due_by: datetime
    inspection_id: int | None
