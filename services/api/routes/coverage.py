"""`GET /api/v1/metrics/coverage`: are we at 100 %? (definitions: docs/metrics.md)"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from sqlmodel import Session, select

from services.api import coverage as cov
from services.api.coverage_cache import SettledHours, cached_series
from services.api.coverage_queries import (
    Scope,
    aligned_window,
    coverage_series,
    default_window,
)
from services.api.deps import CurrentKey, SessionDep, SettingsDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.params import FromParam, ToParam, check_window
from services.api.schemas import CoverageReport
from services.core.db import utcnow
from services.core.models import Checkpoint, Site

router = APIRouter(prefix="/metrics", tags=["metrics"])
MAX_DAYS = 400
DAY = timedelta(hours=24)


def resolve_scope(session: Session, site_id: str | None, checkpoint_id: str | None) -> Scope:
    if checkpoint_id is not None:
        checkpoint = session.get(Checkpoint, checkpoint_id)
        if checkpoint is None:
            raise ApiProblem(404, f"no checkpoint {checkpoint_id!r}")
        if site_id is not None and checkpoint.site_id != site_id:
            raise invalid_field("query.site_id", f"checkpoint {checkpoint_id} is not in it")
        rows = [checkpoint]
    elif site_id is not None:
        if session.get(Site, site_id) is None:
            raise ApiProblem(404, f"no site {site_id!r}")
        rows = list(session.exec(select(Checkpoint).where(Checkpoint.site_id == site_id)))
    else:
        rows = list(session.exec(select(Checkpoint)))
    active = {cp.id: cp.min_staff for cp in rows if cp.active}
    whole = site_id is None and checkpoint_id is None
    return Scope(checkpoints=active, members=None if whole else sorted(cp.id for cp in rows))


@router.get(
    "/coverage",
    response_model=CoverageReport,
    response_model_by_alias=True,
    summary="Coverage figures per hour or local day, and for the whole window",
    responses=problem_responses(401, 403, 404, 422),
)
def get_coverage(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentKey,
    from_: FromParam = None,
    to: ToParam = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    checkpoint_id: Annotated[str | None, Query(max_length=64)] = None,
    bucket: Literal["hour", "day"] = "hour",
    source: Annotated[
        Literal["rollup", "recount"],
        Query(description="`recount` scans raw rows instead of the roll-ups (admin only)"),
    ] = "rollup",
) -> Response:
    """From the hourly roll-ups. `from` is rounded down and `to` up to whole hours (UTC);
    the default window is the last 24 hours. Day buckets are local days of the
    community's time zone. A bucket without passages has null coverage, not 0 or 1."""
    if source == "recount" and actor.role != "admin":
        raise ApiProblem(403, "source=recount scans raw rows: admin role only", "forbidden")
    check_window(from_, to, MAX_DAYS)
    now = utcnow()
    if to is None:
        to = default_window(now)[1] if from_ is None or from_ < now else from_ + DAY
    if from_ is None:
        from_ = to - DAY
    start, end = aligned_window(from_, to)
    scope = resolve_scope(session, site_id, checkpoint_id)
    hours = int((end - start).total_seconds()) // cov.HOUR
    conn = session.connection()
    if source == "rollup":
        cache: SettledHours = request.app.state.settled_hours
        series = cached_series(conn, scope, start, end, now, cache, settings.max_event_age_h)
    else:
        series = coverage_series(conn, scope, start, end, now, source)
    buckets = (
        cov.hour_buckets(start, hours)
        if bucket == "hour"
        else cov.day_buckets(start, hours, settings.timezone)
    )
    report = CoverageReport.model_validate(
        {
            "from": start,
            "to": end,
            "bucket": bucket,
            "timezone": settings.timezone,
            "site_id": site_id,
            "checkpoint_id": checkpoint_id,
            "checkpoints": len(scope.checkpoints),
            "source": source,
            "total": cov.figures(series, 0, hours),
            "buckets": cov.bucket_figures(series, buckets),
        }
    )
    # serialised once, here: returning the model would have FastAPI validate it again
    return Response(report.model_dump_json(by_alias=True), media_type="application/json")
