"""Rosters, staffing requirements, who may serve where, hours served, roster state per
checkpoint, staffing coverage by requirement, and duty from unknown staff ids.
(CSV import of rosters: `POST /registry/import/rosters`.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlmodel import col, delete, select

from services.api.coverage_roster import RosterCoverageReport, roster_coverage
from services.api.deps import AdminKey, CurrentKey, RegistryReaderKey, SessionDep, SettingsDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.params import FromParam, LimitParam, ToParam, check_window
from services.api.privacy import scope_conditions
from services.api.routes.common import IntId, SlugId, commit_audited, get_or_404, must_exist
from services.core.models import Checkpoint, DutyEvent, Staff
from services.core.models.roster import (
    RosterShift,
    RosterShiftCreate,
    RosterShiftPublic,
    ScreeningQuality,
    StaffCheckpoint,
    StaffingRequirement,
    StaffingRequirementCreate,
    StaffingRequirementPublic,
)
from services.core.roster_report import (
    duty_periods,
    hours_by_role,
    hours_served,
    load_requirements,
    requirements_for,
    staff_roles,
)
from services.core.staffing import DEFAULT_REQUIREMENTS, missing, requirements_at

router = APIRouter(prefix="/roster", tags=["roster"])
ERRORS = problem_responses(401, 403, 404, 409, 422)
MAX_DAYS = 31


def _window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    start, end = check_window(start, end, MAX_DAYS)
    end = end or now
    start = start or end - timedelta(days=1)
    if end <= start:
        raise invalid_field("query.from", "must be earlier than `to`")
    if end - start > timedelta(days=MAX_DAYS):
        raise invalid_field("query.from", f"the window may span at most {MAX_DAYS} days")
    return start, end


# --- shifts ----------------------------------------------------------------------------
@router.get("/shifts", response_model=list[RosterShiftPublic], responses=ERRORS)
def list_shifts(
    session: SessionDep,
    actor: CurrentKey,
    start: FromParam = None,
    to: ToParam = None,
    checkpoint_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: LimitParam = 1000,
) -> list[RosterShift]:
    """Shifts overlapping the window (default: the last day); a duty key sees its own
    checkpoints' only."""
    start, end = _window(start, to)
    query = (
        select(RosterShift)
        .where(col(RosterShift.starts_at) < end, col(RosterShift.ends_at) > start)
        .where(*scope_conditions(actor, col(RosterShift.checkpoint_id)))
        .order_by(col(RosterShift.starts_at), col(RosterShift.checkpoint_id))
        .limit(limit)
    )
    if checkpoint_id is not None:
        query = query.where(RosterShift.checkpoint_id == checkpoint_id)
    return list(session.exec(query))


@router.post("/shifts", response_model=RosterShiftPublic, status_code=201, responses=ERRORS)
def create_shift(body: RosterShiftCreate, session: SessionDep, actor: AdminKey) -> RosterShift:
    must_exist(session, Checkpoint, body.checkpoint_id, "body.checkpoint_id")
    must_exist(session, Staff, body.staff_id, "body.staff_id")
    if body.starts_at.tzinfo is None or body.ends_at.tzinfo is None:
        raise invalid_field("body.starts_at", "times need their offset")
    if not body.starts_at < body.ends_at <= body.starts_at + timedelta(hours=24):
        raise invalid_field("body.ends_at", "a shift ends after it starts, within 24 hours")
    allowed = set(
        session.exec(
            select(StaffCheckpoint.checkpoint_id).where(StaffCheckpoint.staff_id == body.staff_id)
        )
    )
    if allowed and body.checkpoint_id not in allowed:
        raise invalid_field("body.checkpoint_id", f"{body.staff_id} may not serve here")
    clash = session.exec(
        select(RosterShift.id).where(
            RosterShift.checkpoint_id == body.checkpoint_id,
            RosterShift.staff_id == body.staff_id,
            RosterShift.starts_at == body.starts_at,
        )
    ).first()
    if clash is not None:
        raise ApiProblem(409, "this person is already rostered here at this time")
    row = RosterShift.model_validate(body)
    session.add(row)
    detail = body.model_dump(mode="json")
    commit_audited(session, actor, "roster.create", "roster/shift", detail, row)
    return row


@router.delete("/shifts/{shift_id}", status_code=204, responses=ERRORS)
def delete_shift(shift_id: IntId, session: SessionDep, actor: AdminKey) -> None:
    row = get_or_404(session, RosterShift, shift_id, "shift")
    session.delete(row)
    commit_audited(session, actor, "roster.delete", f"roster/shift/{shift_id}")


# --- who may serve where ---------------------------------------------------------------
class ServeList(BaseModel):
    checkpoint_ids: list[str] = Field(max_length=500)


@router.get("/staff/{staff_id}/checkpoints", response_model=ServeList, responses=ERRORS)
def get_serves(staff_id: SlugId, session: SessionDep, _actor: RegistryReaderKey) -> ServeList:
    get_or_404(session, Staff, staff_id, "staff member")
    rows = session.exec(
        select(StaffCheckpoint.checkpoint_id)
        .where(StaffCheckpoint.staff_id == staff_id)
        .order_by(col(StaffCheckpoint.checkpoint_id))
    )
    return ServeList(checkpoint_ids=list(rows))


@router.put("/staff/{staff_id}/checkpoints", response_model=ServeList, responses=ERRORS)
def set_serves(
    staff_id: SlugId, body: ServeList, session: SessionDep, actor: AdminKey
) -> ServeList:
    """The checkpoints this staff member may serve (empty: any)."""
    get_or_404(session, Staff, staff_id, "staff member")
    wanted = sorted(set(body.checkpoint_ids))
    for n, cp_id in enumerate(wanted):
        must_exist(session, Checkpoint, cp_id, f"body.checkpoint_ids.{n}")
    session.exec(delete(StaffCheckpoint).where(col(StaffCheckpoint.staff_id) == staff_id))
    for cp_id in wanted:
        session.add(StaffCheckpoint(staff_id=staff_id, checkpoint_id=cp_id))
    commit_audited(session, actor, "roster.serves", f"staff/{staff_id}", {"checkpoints": wanted})
    return ServeList(checkpoint_ids=wanted)


# --- requirements ----------------------------------------------------------------------
def _check_requirement(session: SessionDep, body: StaffingRequirementCreate) -> None:
    must_exist(session, Checkpoint, body.checkpoint_id, "body.checkpoint_id")
    if len(body.roles) > body.min_on_duty and body.min_on_duty:
        raise invalid_field("body.min_on_duty", "fewer than the roles it names")


@router.get("/requirements", response_model=list[StaffingRequirementPublic], responses=ERRORS)
def list_requirements(session: SessionDep, _actor: CurrentKey) -> list[StaffingRequirement]:
    return list(session.exec(select(StaffingRequirement).order_by(col(StaffingRequirement.id))))


@router.post(
    "/requirements", response_model=StaffingRequirementPublic, status_code=201, responses=ERRORS
)
def create_requirement(
    body: StaffingRequirementCreate, session: SessionDep, actor: AdminKey
) -> StaffingRequirement:
    _check_requirement(session, body)
    row = StaffingRequirement.model_validate(body)
    session.add(row)
    commit_audited(
        session, actor, "requirement.create", "roster/requirement", body.model_dump(), row
    )
    return row


@router.put(
    "/requirements/{requirement_id}", response_model=StaffingRequirementPublic, responses=ERRORS
)
def replace_requirement(
    requirement_id: IntId, body: StaffingRequirementCreate, session: SessionDep, actor: AdminKey
) -> StaffingRequirement:
    row: StaffingRequirement = get_or_404(
        session, StaffingRequirement, requirement_id, "requirement"
    )
    _check_requirement(session, body)
    for name, value in body.model_dump().items():
        setattr(row, name, value)
    session.add(row)
    where = f"roster/requirement/{requirement_id}"
    commit_audited(session, actor, "requirement.update", where, body.model_dump(), row)
    return row


@router.delete("/requirements/{requirement_id}", status_code=204, responses=ERRORS)
def delete_requirement(requirement_id: IntId, session: SessionDep, actor: AdminKey) -> None:
    row = get_or_404(session, StaffingRequirement, requirement_id, "requirement")
    session.delete(row)
    commit_audited(session, actor, "requirement.delete", f"roster/requirement/{requirement_id}")


@router.post(
    "/requirements/defaults",
    response_model=list[StaffingRequirementPublic],
    status_code=201,
    responses=ERRORS,
)
def install_defaults(session: SessionDep, actor: AdminKey) -> list[StaffingRequirement]:
    """The defaults for every checkpoint: 23:00-06:00 at least 3 on duty, one each of
    police, medical and community staff; 06:00-23:00 never unstaffed. 409 when
    defaults for all checkpoints exist already."""
    existing = session.exec(
        select(StaffingRequirement.id).where(col(StaffingRequirement.checkpoint_id).is_(None))
    ).first()
    if existing is not None:
        raise ApiProblem(409, "requirements for all checkpoints exist; edit those")
    rows = [
        StaffingRequirement(
            checkpoint_id=None,
            label=r.label,
            start_minute=r.start_minute,
            end_minute=r.end_minute,
            min_on_duty=r.min_on_duty,
            roles=list(r.roles),
        )
        for r in DEFAULT_REQUIREMENTS
    ]
    session.add_all(rows)
    commit_audited(session, actor, "requirement.defaults", "roster/requirement")
    for row in rows:
        session.refresh(row)
    return rows


# --- figures ---------------------------------------------------------------------------
class PersonHours(BaseModel):
    staff_id: str
    name: str
    duty_role: str
    checkpoint_id: str
    hours: float


class HoursReport(BaseModel):
    start: datetime
    end: datetime
    people: list[PersonHours]
    by_role: dict[str, float]


@router.get("/hours", response_model=HoursReport, responses=ERRORS)
def get_hours(
    session: SessionDep, _actor: RegistryReaderKey, start: FromParam = None, to: ToParam = None
) -> HoursReport:
    """Hours on duty per person and checkpoint, and per duty role (volunteers included),
    from counted duty events (unknown staff ids are not counted)."""
    start, end = _window(start, to)
    rows = hours_served(session.connection(), start, min(end, datetime.now(UTC)))
    people = [
        PersonHours(
            staff_id=r.staff_id,
            name=r.name,
            duty_role=r.duty_role,
            checkpoint_id=r.checkpoint_id,
            hours=r.hours,
        )
        for r in rows
    ]
    return HoursReport(start=start, end=end, people=people, by_role=hours_by_role(rows))


@router.get("/coverage", response_model=RosterCoverageReport, responses=ERRORS)
def get_roster_coverage(
    session: SessionDep,
    settings: SettingsDep,
    _actor: CurrentKey,
    start: FromParam = None,
    to: ToParam = None,
    checkpoint_id: Annotated[str | None, Query(max_length=64)] = None,
) -> RosterCoverageReport:
    """Minutes meeting the staffing requirement per checkpoint, with the old "someone
    on duty" minutes beside them."""
    start, end = _window(start, to)
    end = min(end, datetime.now(UTC))
    if end <= start:
        raise invalid_field("query.from", "lies in the future")
    tz = ZoneInfo(settings.timezone)
    return roster_coverage(session.connection(), start, end, tz, checkpoint_id)


class RosterState(BaseModel):
    checkpoint_id: str
    on_duty: list[str]
    roles_on_duty: list[str]
    rostered: list[str]
    absent: list[str]  # rostered now, not on duty
    requirement: str | None
    need: int
    missing_roles: list[str]
    met: bool
    screening: str  # the worst lane's verdict: suspect | ok | no_data
    screening_checks: list[str]  # the checks a suspect lane failed


@router.get("/state", response_model=list[RosterState], responses=ERRORS)
def get_state(session: SessionDep, settings: SettingsDep, _actor: CurrentKey) -> list[RosterState]:
    """Each active checkpoint now: who is on duty, who is rostered, what is missing."""
    conn = session.connection()
    now = datetime.now(UTC)
    tz = ZoneInfo(settings.timezone)
    reqs = load_requirements(conn)
    roles = staff_roles(conn)
    periods = duty_periods(conn, now - timedelta(hours=12), now)
    shifts = session.exec(
        select(RosterShift.checkpoint_id, RosterShift.staff_id).where(
            col(RosterShift.starts_at) <= now, col(RosterShift.ends_at) > now
        )
    ).all()
    rostered: dict[str, list[str]] = {}
    for cp_id, staff_id in shifts:
        rostered.setdefault(cp_id, []).append(staff_id)
    screening: dict[str, list[ScreeningQuality]] = {}
    for verdict in session.exec(select(ScreeningQuality)):
        screening.setdefault(verdict.checkpoint_id, []).append(verdict)
    out: list[RosterState] = []
    for cp in session.exec(
        select(Checkpoint).where(col(Checkpoint.active).is_(True)).order_by(col(Checkpoint.id))
    ):
        here = sorted(
            s for s, spans in periods.get(cp.id, {}).items() if any(b >= now for _, b in spans)
        )
        in_force = requirements_at(requirements_for(reqs, cp.id), now, tz)
        lack = missing(in_force, [roles.get(s, "") for s in here], cp.min_staff)
        names = sorted(rostered.get(cp.id, []))
        out.append(
            RosterState(
                checkpoint_id=cp.id,
                on_duty=here,
                roles_on_duty=[roles.get(s, "") for s in here],
                rostered=names,
                absent=[s for s in names if s not in here],
                requirement="+".join(r.label for r in in_force) or None,
                need=max([cp.min_staff, *(r.min_on_duty for r in in_force)]),
                missing_roles=list(lack.roles) if lack else [],
                met=lack is None,
                **_screening(screening.get(cp.id, [])),
            )
        )
    return out


def _screening(lanes: list[ScreeningQuality]) -> dict[str, Any]:
    statuses = {lane.status for lane in lanes}
    worst = next((s for s in ("suspect", "ok") if s in statuses), "no_data")
    failed = sorted(
        {
            check["check"]
            for lane in lanes
            for check in (lane.evidence or {}).get("checks", [])
            if check.get("failed")
        }
    )
    return {"screening": worst, "screening_checks": failed}


class UnknownDuty(BaseModel):
    id: int
    checkpoint_id: str
    staff_id: str
    action: str
    ts: datetime


@router.get("/unknown-duty", response_model=list[UnknownDuty], responses=ERRORS)
def unknown_duty(
    session: SessionDep, _actor: RegistryReaderKey, limit: LimitParam = 100
) -> list[UnknownDuty]:
    """Duty messages naming a staff id the registry does not know: stored, not counted."""
    rows = session.exec(
        select(DutyEvent)
        .where(col(DutyEvent.unknown_staff).is_(True))
        .order_by(col(DutyEvent.id).desc())
        .limit(limit)
    )
    return [
        UnknownDuty(
            id=r.id or 0,
            checkpoint_id=r.checkpoint_id,
            staff_id=r.staff_id,
            action=r.action,
            ts=r.ts,
        )
        for r in rows
    ]
