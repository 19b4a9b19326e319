"""The live board: every checkpoint's state now, and one checkpoint's detail."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import Connection, func, select

from services.api.coverage import ratio
from services.api.deps import CurrentKey, SessionDep, SettingsDep
from services.api.errors import ApiProblem, problem_responses
from services.api.privacy import sees_full_ids, shown
from services.api.routes.common import known_filters
from services.api.routes.passages import screening_temp
from services.api.schemas import Board, BoardCheckpoint, TodayCoverage
from services.core import online
from services.core.db import utcnow
from services.core.models.events import PassagePublic
from services.core.tables import (
    alert_t,
    checkpoint_t,
    passage_t,
    presence_t,
    rollup_t,
    state_t,
)

router = APIRouter(prefix="/checkpoints", tags=["board"])


SEVERITIES = ("critical", "major", "warning")


def local_midnight(now: datetime, timezone: str) -> datetime:
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    return datetime.combine(today, time.min, tzinfo=zone).astimezone(UTC)


def _minutes_since(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds() / 60, 1)


def board_rows(
    conn: Connection,
    now: datetime,
    timezone: str,
    checkpoint_ids: list[str] | None = None,
    site_id: str | None = None,
    *,
    silence: timedelta,
) -> list[BoardCheckpoint]:
    """`silence`: CPM_DEVICE_SILENCE_S, past which a device shows offline (online.py)."""
    query = select(checkpoint_t, state_t).outerjoin(
        state_t, state_t.c.checkpoint_id == checkpoint_t.c.id
    )
    if checkpoint_ids is not None:
        query = query.where(checkpoint_t.c.id.in_(checkpoint_ids))
    if site_id is not None:
        query = query.where(checkpoint_t.c.site_id == site_id)
    checkpoints = list(conn.execute(query.order_by(checkpoint_t.c.id)).mappings())
    wanted = [row["id"] for row in checkpoints]
    if not wanted:
        return []

    on_duty: defaultdict[str, list[str]] = defaultdict(list)
    for cp, staff_id in conn.execute(
        select(presence_t.c.checkpoint_id, presence_t.c.staff_id)
        .where(presence_t.c.on_duty.is_(True), presence_t.c.checkpoint_id.in_(wanted))
        .order_by(presence_t.c.staff_id)
    ):
        on_duty[cp].append(staff_id)

    today_from = local_midnight(now, timezone)
    today: dict[str, Any] = {
        row.checkpoint_id: row
        for row in conn.execute(
            select(
                rollup_t.c.checkpoint_id,
                func.sum(rollup_t.c.passages).label("passages"),
                func.sum(rollup_t.c.persons_in + rollup_t.c.persons_out).label("persons"),
                func.sum(rollup_t.c.screened_persons).label("screened"),
                func.sum(rollup_t.c.registered).label("registered"),
                func.sum(rollup_t.c.fevers).label("fevers"),
            )
            .where(rollup_t.c.bucket >= today_from, rollup_t.c.checkpoint_id.in_(wanted))
            .group_by(rollup_t.c.checkpoint_id)
        )
    }

    alerts: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SEVERITIES, 0))
    for cp, severity, count in conn.execute(
        select(alert_t.c.checkpoint_id, alert_t.c.severity, func.count())
        .where(alert_t.c.status != "resolved", alert_t.c.checkpoint_id.in_(wanted))
        .group_by(alert_t.c.checkpoint_id, alert_t.c.severity)
    ):
        alerts[cp][severity] = int(count)

    out = []
    for row in checkpoints:
        cp = row["id"]
        counts = today.get(cp)
        staff = on_duty.get(cp, [])
        reported = row["device_state"] or "unknown"
        last_seen = row["last_seen_at"]
        device_state = online.shown_state(reported, last_seen, now, silence)
        out.append(
            BoardCheckpoint(
                id=cp,
                site_id=row["site_id"],
                name=row["name"],
                name_zh=row["name_zh"],
                active=row["active"],
                min_staff=row["min_staff"],
                device_state=device_state,
                reported_state=reported,
                silent=reported == "online" and online.is_silent(last_seen, now, silence),
                online=device_state == "online",
                state_since=row["state_since"],
                last_seen_at=row["last_seen_at"],
                staff_on_duty=len(staff),
                staff_ids=staff,
                understaffed=row["active"] and len(staff) < row["min_staff"],
                minutes_since_passage=_minutes_since(now, row["last_passage_at"]),
                minutes_since_reading=_minutes_since(now, row["last_reading_at"]),
                clock_skew_s=row["clock_skew_s"],
                backlog=row["backlog"],
                today=TodayCoverage(
                    passages=int(counts.passages) if counts else 0,
                    temperature_coverage=ratio(counts.screened, counts.persons) if counts else None,
                    registration_coverage=(
                        ratio(counts.registered, counts.passages) if counts else None
                    ),
                    fevers=int(counts.fevers) if counts else 0,
                ),
                open_alerts=alerts.get(cp, dict.fromkeys(SEVERITIES, 0)),
            )
        )
    return out


@router.get(
    "",
    response_model=Board,
    summary="Every checkpoint with its live state",
    responses=problem_responses(401, 422),
)
def list_checkpoints(
    session: SessionDep,
    settings: SettingsDep,
    _actor: CurrentKey,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Board:
    known_filters(session, site_id, None)
    now = utcnow()
    rows = board_rows(
        session.connection(),
        now,
        settings.timezone,
        site_id=site_id,
        silence=timedelta(seconds=settings.device_silence_s),
    )
    return Board(
        generated_at=now,
        today_from=local_midnight(now, settings.timezone),
        fever_threshold_c=settings.fever_threshold_c,
        checkpoints=rows,
    )


class CheckpointDetail(BaseModel):
    checkpoint: BoardCheckpoint
    recent_passages: list[PassagePublic]


@router.get(
    "/{checkpoint_id}",
    response_model=CheckpointDetail,
    summary="One checkpoint's live state and its latest passages",
    responses=problem_responses(401, 404, 422),
)
def get_checkpoint(
    checkpoint_id: str,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentKey,
    recent: Annotated[int, Query(ge=0, le=200, description="How many passages")] = 20,
) -> CheckpointDetail:
    """The state is for everybody; the recent passages (personal data) only for keys
    that may read this checkpoint's rows (a duty key: its own checkpoints)."""
    now = utcnow()
    rows = board_rows(
        session.connection(),
        now,
        settings.timezone,
        [checkpoint_id],
        silence=timedelta(seconds=settings.device_silence_s),
    )
    if not rows:
        raise ApiProblem(404, "no checkpoint with this id")
    if not actor.may_act_on(checkpoint_id):
        recent = 0
    passages = session.connection().execute(
        select(passage_t, screening_temp())
        .where(passage_t.c.checkpoint_id == checkpoint_id)
        .order_by(passage_t.c.ts.desc(), passage_t.c.id.desc())
        .limit(recent)
    )
    full = sees_full_ids(actor, settings)
    return CheckpointDetail(
        checkpoint=rows[0],
        recent_passages=[
            PassagePublic.model_validate(shown(dict(p), full)) for p in passages.mappings()
        ],
    )
