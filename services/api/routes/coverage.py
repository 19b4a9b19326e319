"""`GET /api/v1/metrics/coverage`: are we at 100 %? (definitions: docs/metrics.md)"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import TypeAdapter
from sqlmodel import Session, select

from services.api import coverage as cov
from services.api.coverage_cache import (
    BucketKey,
    CoverageHours,
    SettledHours,
    cached_hours,
    scope_key,
)
from services.api.coverage_queries import (
    Scope,
    aligned_window,
    coverage_series,
    default_window,
)
from services.api.deps import CurrentKey, SessionDep, SettingsDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.params import FromParam, ToParam, check_window
from services.api.schemas import CoverageBucket, CoverageReport
from services.core.db import utcnow
from services.core.enums import Role
from services.core.models import Checkpoint, Site

router = APIRouter(prefix="/metrics", tags=["metrics"])
MAX_DAYS = 400
DAY = timedelta(hours=24)


def resolve_scope(session: Session, site_id: str | None, checkpoint_id: str | None) -> Scope:
    if checkpoint_id is not None:
        checkpoint = session.get(Checkpoint, checkpoint_id)
        if checkpoint is None:
            raise invalid_field("query.checkpoint_id", "names no existing checkpoint")
        if site_id is not None and checkpoint.site_id != site_id:
            raise invalid_field("query.site_id", "the checkpoint is not in this site")
        rows = [checkpoint]
    elif site_id is not None:
        if session.get(Site, site_id) is None:
            raise invalid_field("query.site_id", "names no existing site")
        rows = list(session.exec(select(Checkpoint).where(Checkpoint.site_id == site_id)))
    else:
        rows = list(session.exec(select(Checkpoint)))
    active = {cp.id: cp.min_staff for cp in rows if cp.active}
    service = {cp.id: service_period(cp) for cp in rows if cp.active}
    service = {cp: period for cp, period in service.items() if period != cov.ALWAYS}
    if site_id is None and checkpoint_id is None:
        everyone = tuple(sorted(cp.id for cp in rows))
        return Scope(checkpoints=active, members=None, everyone=everyone, service=service)
    return Scope(checkpoints=active, members=sorted(cp.id for cp in rows), service=service)


def service_period(checkpoint: Checkpoint) -> cov.Period:
    """The checkpoint's in-service period as epoch seconds (None: unbounded)."""
    return (
        None if checkpoint.commissioned_at is None else cov.epoch(checkpoint.commissioned_at),
        None if checkpoint.decommissioned_at is None else cov.epoch(checkpoint.decommissioned_at),
    )


BUCKET = TypeAdapter(CoverageBucket)
_NO_BUCKETS = b'"buckets":[]}'


def bucket_json(figures: dict[str, Any]) -> bytes:
    return BUCKET.dump_json(BUCKET.validate_python(figures), by_alias=True)


def buckets_json(
    hours: CoverageHours, buckets: Sequence[cov.Bucket], memory: SettledHours | None
) -> list[bytes]:
    """Each bucket's JSON; that of buckets made only of settled hours is kept in `memory`
    (a 30-day report by hour is 720 of them, most of the work otherwise)."""
    kept = memory.bucket_bodies(hours.key) if memory is not None else {}
    new: dict[BucketKey, bytes] = {}
    out = []
    for bucket in buckets:
        key = (bucket.start, bucket.end, bucket.label)
        body = kept.get(key)
        if body is None:
            body = bucket_json(cov.bucket_figures_of(hours.rows, bucket))
            if bucket.last_hour <= hours.settled:
                new[key] = body
        out.append(body)
    if memory is not None:
        memory.keep_bucket_bodies(hours.key, new)
    return out


def report_json(head: dict[str, Any], total: dict[str, Any], buckets: list[bytes]) -> bytes:
    """What `CoverageReport(**head, total=total, buckets=...).model_dump_json()` gives, with
    the buckets' JSON (validated and serialised one by one) spliced in."""
    empty = CoverageReport.model_validate({**head, "total": total, "buckets": []})
    body = empty.model_dump_json(by_alias=True).encode()
    if not body.endswith(_NO_BUCKETS):  # `buckets` must stay the report's last field
        raise RuntimeError("unexpected CoverageReport layout")
    return body[: -len(_NO_BUCKETS)] + b'"buckets":[' + b",".join(buckets) + b"]}"


@router.get(
    "/coverage",
    response_model=CoverageReport,
    response_model_by_alias=True,
    summary="Coverage figures per hour or local day, and for the whole window",
    responses=problem_responses(401, 403, 422),
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
    if source == "recount" and actor.role != Role.ADMIN:
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
    memory: SettledHours | None = None
    if source == "rollup":
        memory = request.app.state.settled_hours
        per_hour = cached_hours(conn, scope, start, end, now, memory, settings.max_event_age_h)
    else:  # no memory: the recount is the reference
        series = coverage_series(conn, scope, start, end, now, source)
        per_hour = CoverageHours(scope_key(scope), cov.hour_totals(series), 0)
    buckets = (
        cov.hour_buckets(start, hours)
        if bucket == "hour"
        else cov.day_buckets(start, hours, settings.timezone)
    )
    head = {
        "from": start,
        "to": end,
        "bucket": bucket,
        "timezone": settings.timezone,
        "site_id": site_id,
        "checkpoint_id": checkpoint_id,
        "checkpoints": len(scope.checkpoints),
        "source": source,
    }
    total = cov.figures_of(cov.add_totals(per_hour.rows))
    # serialised here: returning a model would have FastAPI validate all of it again
    body = report_json(head, total, buckets_json(per_hour, buckets, memory))
    return Response(body, media_type="application/json")
