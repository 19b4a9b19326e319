"""The look-back plan, the planned visits and the supervision figures."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.api.deps import CurrentKey, InspectorKey, SessionDep, SettingsDep
from services.api.errors import invalid_field, problem_responses
from services.api.routes.common import commit_audited
from services.api.routes.enterprises import ManagerKey
from services.api.supervision_metrics import load_figures
from services.api.supervision_scheduling import days_window, save_lookback_plan, visits_between
from services.core.db import utcnow
from services.core.models.supervision import SupervisionVisit, SupervisionVisitPublic

router = APIRouter(prefix="/supervision", tags=["supervision"])
ERRORS = problem_responses(401, 403, 404, 422)
MAX_DAYS = 92


class PlanRequest(BaseModel):
    start: date | None = Field(default=None, description="First local day; default today")
    days: int | None = Field(
        default=None, ge=1, le=90, description="Default CPM_SUPERVISION_LOOKBACK_DAYS"
    )
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="Default: random")


def today(timezone: str) -> date:
    return utcnow().astimezone(ZoneInfo(timezone)).date()


def check_days(first: date, last: date) -> None:
    if last < first:
        raise invalid_field("query.to_day", "is before from_day")
    if (last - first).days >= MAX_DAYS:
        raise invalid_field("query.to_day", f"at most {MAX_DAYS} days")


@router.post(
    "/plan", response_model=list[SupervisionVisitPublic], status_code=201, responses=ERRORS
)
def make_plan(
    body: PlanRequest, session: SessionDep, settings: SettingsDep, actor: ManagerKey
) -> list[SupervisionVisit]:
    """Plan unannounced look-back visits of every residential compound and industrial
    park: each within N days of its last visit, random day and time, shared fairly
    across the active teams. Replaces the open look-back visits from `start` on."""
    start = body.start or today(settings.timezone)
    days = body.days or settings.supervision_lookback_days
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    visits = save_lookback_plan(session, start, days, settings.timezone, seed)
    detail = {"start": start.isoformat(), "days": days, "visits": len(visits)}
    commit_audited(session, actor, "supervision.plan", "supervision/plan", detail)
    for v in visits:
        session.refresh(v)
    return visits


@router.get("/visits", response_model=list[SupervisionVisitPublic], responses=ERRORS)
def list_visits(
    session: SessionDep,
    settings: SettingsDep,
    _actor: InspectorKey,
    from_day: date | None = None,
    to_day: date | None = None,
    team_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[SupervisionVisit]:
    """Planned visits of the local days [from_day, to_day] (default: today)."""
    first = from_day or today(settings.timezone)
    last = to_day or first
    check_days(first, last)
    start, end = days_window(first, last, settings.timezone)
    return visits_between(session, start, end, team_id)


@router.get("/metrics", responses=ERRORS)
def get_metrics(
    session: SessionDep,
    settings: SettingsDep,
    _actor: CurrentKey,
    from_day: date | None = None,
    to_day: date | None = None,
) -> dict[str, Any]:
    """Enterprises resumed and checked the same day, pass rates (overall, by checklist,
    by site), findings open and overdue, for the local days [from_day, to_day]
    (default: today). Corrected inspections count through their correction."""
    first = from_day or today(settings.timezone)
    last = to_day or first
    check_days(first, last)
    start, end = days_window(first, last, settings.timezone)
    now: datetime = utcnow()
    return load_figures(session, first, last, start, end, now, settings.timezone)
