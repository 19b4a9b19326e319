"""Planned visits in the database: the look-back plan and the same-day checks.

The plans themselves are pure (services/core/supervision_plan); this reads who and what
to plan for and writes the visits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from services.core.models import Site
from services.core.models.supervision import (
    Enterprise,
    Inspection,
    ResumptionStatus,
    SupervisionTeam,
    SupervisionVisit,
    VisitKind,
)
from services.core.supervision_plan import (
    PlannedVisit,
    ResumedEnterprise,
    local_day_bounds,
    lookback_plan,
    same_day_checks,
)

LOOKBACK_SITE_KINDS = ("residential", "industrial")


def active_team_ids(session: Session) -> list[str]:
    teams = session.exec(select(SupervisionTeam.id).where(col(SupervisionTeam.active)))
    return sorted(teams)


def last_visit_days(session: Session, timezone: str) -> dict[str, date]:
    """The local day of each site's latest signed look-back-able inspection."""
    rows = session.exec(
        select(Inspection.site_id, func.max(Inspection.inspected_at))
        .where(col(Inspection.signed_at).is_not(None), col(Inspection.enterprise_id).is_(None))
        .group_by(col(Inspection.site_id))
    )
    tz = ZoneInfo(timezone)
    out: dict[str, date] = {}
    for site_id, at in rows:
        if at is not None:
            if at.tzinfo is None:  # SQLite aggregate: a naive UTC string
                at = datetime.fromisoformat(str(at)).replace(tzinfo=ZoneInfo("UTC"))
            out[site_id] = at.astimezone(tz).date()
    return out


def save_lookback_plan(
    session: Session, start: date, days: int, timezone: str, seed: int
) -> list[SupervisionVisit]:
    """Plan the look-back visits of [start, start + days) local days, replacing the
    open (not yet done) look-back visits planned from `start` on. The caller commits."""
    sites = sorted(session.exec(select(Site.id).where(col(Site.kind).in_(LOOKBACK_SITE_KINDS))))
    plan = lookback_plan(
        sites,
        active_team_ids(session),
        start,
        days,
        timezone,
        seed,
        last_visit_days(session, timezone),
    )
    window_start = local_day_bounds(start, timezone)[0]
    session.execute(
        delete(SupervisionVisit).where(
            col(SupervisionVisit.kind) == VisitKind.LOOKBACK,
            col(SupervisionVisit.inspection_id).is_(None),
            col(SupervisionVisit.planned_at) >= window_start,
        )
    )
    return add_visits(session, VisitKind.LOOKBACK, plan)


def add_visits(session: Session, kind: str, plan: Sequence[PlannedVisit]) -> list[SupervisionVisit]:
    rows = [
        SupervisionVisit(
            kind=kind,
            team_id=v.team_id,
            site_id=v.site_id,
            enterprise_id=v.enterprise_id,
            planned_at=v.planned_at,
            due_by=v.due_by,
        )
        for v in plan
    ]
    session.add_all(rows)
    session.flush()
    return rows


def schedule_resumption_checks(
    session: Session, enterprises: Sequence[Enterprise], now: datetime, timezone: str
) -> list[SupervisionVisit]:
    """A same-day check for each resumed enterprise without one yet. The caller commits."""
    due = []
    for e in enterprises:
        if e.status != ResumptionStatus.RESUMED or e.resumed_on is None or e.id is None:
            continue
        planned = session.exec(
            select(SupervisionVisit.id).where(
                SupervisionVisit.enterprise_id == e.id,
                SupervisionVisit.kind == VisitKind.RESUMPTION,
            )
        ).first()
        if planned is None:
            due.append(ResumedEnterprise(e.id, e.site_id, e.resumed_on))
    teams = active_team_ids(session)
    if not due or not teams:
        return []
    day_start, day_end = local_day_bounds(now.astimezone(ZoneInfo(timezone)).date(), timezone)
    load = dict(
        session.exec(
            select(SupervisionVisit.team_id, func.count())
            .where(SupervisionVisit.planned_at >= day_start, SupervisionVisit.planned_at < day_end)
            .group_by(col(SupervisionVisit.team_id))
        ).all()
    )
    seed = int(now.timestamp()) ^ len(due)
    return add_visits(
        session, VisitKind.RESUMPTION, same_day_checks(due, teams, load, now, timezone, seed)
    )


def visits_between(
    session: Session, start: datetime, end: datetime, team_id: str | None
) -> list[SupervisionVisit]:
    query = select(SupervisionVisit).where(
        SupervisionVisit.planned_at >= start, SupervisionVisit.planned_at < end
    )
    if team_id is not None:
        query = query.where(SupervisionVisit.team_id == team_id)
    return list(
        session.exec(query.order_by(col(SupervisionVisit.planned_at), col(SupervisionVisit.id)))
    )


def days_window(first: date, last: date, timezone: str) -> tuple[datetime, datetime]:
    return local_day_bounds(first, timezone)[0], local_day_bounds(last, timezone)[1]
