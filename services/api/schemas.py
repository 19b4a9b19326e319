"""Response and request bodies of the API that are not table models."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from services.core.enums import Role

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page",
        examples=["eyJ0cyI6IjIwMjAtMDItMDFUMDg6MDA6MDBaIiwiaWQiOjQyfQ"],
    )


class PassageCounts(BaseModel):
    total: int
    persons: int
    vehicles: int
    in_: int = Field(alias="in", serialization_alias="in")
    out: int
    persons_in: int
    persons_out: int
    vehicles_in: int
    vehicles_out: int

    model_config = {"populate_by_name": True}


class CoverageFigures(BaseModel):
    passages: PassageCounts
    screened_persons: int
    registered: int
    unregistered: int = Field(description="passages whose status is not `registered`")
    quarantine_breaches: int = Field(description="passages by people under home quarantine")
    readings: int
    fevers: int
    implausible_readings: int
    alerts_opened: int
    checkpoint_minutes: float
    staffed_minutes: float
    online_minutes: float
    temperature_coverage: float | None = Field(
        description="screened person passages / person passages; null without person passages",
        examples=[0.9875],
    )
    registration_coverage: float | None = Field(
        description="registered passages / passages; null without passages", examples=[0.96]
    )
    staffing_coverage: float | None = Field(
        description="checkpoint-minutes with at least min_staff on duty / checkpoint-minutes",
        examples=[1.0],
    )
    device_uptime: float | None = Field(
        description="checkpoint-minutes with the device online / checkpoint-minutes",
        examples=[0.999],
    )


class CoverageBucket(CoverageFigures):
    start: datetime = Field(description="bucket start (UTC)")
    end: datetime = Field(description="bucket end, exclusive (UTC)")
    label: str = Field(
        description="the hour (UTC, ISO 8601) or the local date", examples=["2020-02-01"]
    )


class CoverageReport(BaseModel):
    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    bucket: Literal["hour", "day"]
    timezone: str = Field(examples=["Asia/Shanghai"])
    site_id: str | None
    checkpoint_id: str | None
    checkpoints: int = Field(description="active checkpoints counted in checkpoint-minutes")
    source: Literal["rollup", "recount"]
    total: CoverageFigures
    buckets: list[CoverageBucket]

    model_config = {"populate_by_name": True}


class TodayCoverage(BaseModel):
    passages: int
    temperature_coverage: float | None
    registration_coverage: float | None
    fevers: int


class BoardCheckpoint(BaseModel):
    id: str
    site_id: str
    name: str
    name_zh: str | None
    active: bool
    min_staff: int
    device_state: str = Field(
        description="online | offline | unknown: offline also when reported online but "
        "silent past CPM_DEVICE_SILENCE_S (the one notion of online, as for uptime and "
        "device_offline)"
    )
    reported_state: str = Field(description="The device's own last status report")
    silent: bool = Field(description="Reported online but not heard past the threshold")
    online: bool
    state_since: datetime | None
    last_seen_at: datetime | None
    staff_on_duty: int
    staff_ids: list[str]
    understaffed: bool
    minutes_since_passage: float | None
    minutes_since_reading: float | None
    clock_skew_s: float | None
    backlog: int | None
    today: TodayCoverage
    open_alerts: dict[str, int] = Field(
        description="open or acknowledged alerts by severity",
        examples=[{"critical": 1, "major": 0, "warning": 2}],
    )


class Board(BaseModel):
    generated_at: datetime
    today_from: datetime = Field(description="start of today in the community's time zone")
    fever_threshold_c: float = Field(
        description="The community's fever threshold (CPM_FEVER_THRESHOLD_C); a site may "
        "set its own (`site.fever_threshold_c`)"
    )
    checkpoints: list[BoardCheckpoint]


class DeadLetterSummary(BaseModel):
    reason: str
    count: int
    last_received_at: datetime | None


class ImportRowError(BaseModel):
    row: int = Field(description="line number in the CSV file (the header is line 1)")
    field: str | None
    message: str


class ImportReport(BaseModel):
    entity: str
    mode: Literal["all_or_nothing", "skip_bad_rows"]
    rows: int
    imported: int
    skipped: int
    committed: bool
    errors: list[ImportRowError]


class TracingQuery(BaseModel):
    id_number: str = Field(
        min_length=5,
        max_length=40,
        description="In the body, never the URL (URLs end up in access logs)",
        examples=["11010519491231002X"],
    )
    id_type: str = Field(default="resident_id", max_length=20)
    from_: datetime = Field(alias="from", examples=["2020-02-01T00:00:00+08:00"])
    to: datetime = Field(examples=["2020-02-15T00:00:00+08:00"])
    window_minutes: int = Field(default=15, ge=1, le=240, description="± minutes")

    model_config = {"populate_by_name": True}


class TracedPassage(BaseModel):
    id: int
    checkpoint_id: str
    ts: datetime
    direction: str
    kind: str
    registration: str
    temp_c: float | None


class Contact(BaseModel):
    person_id: int | None
    id_masked: str | None
    checkpoint_id: str
    ts: datetime
    direction: str
    passage_id: int
    near_passage_id: int = Field(description="the traced person's passage it was near")
    delta_s: float = Field(description="seconds after (+) or before (-) the traced passage")


class TracingResult(BaseModel):
    id_masked: str
    person_id: int | None
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    window_minutes: int
    passages: list[TracedPassage]
    contacts: list[Contact]
    contacts_truncated: bool


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["north-gate handheld"])
    role: Role
    checkpoints: list[str] | None = Field(
        default=None, description="duty keys: the checkpoints they may act on"
    )


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    role: str
    checkpoint_ids: str | None
    key_prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="shown once; only its hash is stored")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    api_key_id: int | None
    role: str | None
    action: str
    resource: str
    detail: str | None
    request_id: str | None
