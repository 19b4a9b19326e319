"""Alerts: list and filter, acknowledge, resolve; silences; the live SSE feed.

State changes go through `services.alerts.lifecycle`, which writes the alert history
and the outbox in the same transaction, so handhelds and webhooks hear about them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import ColumnElement, Engine, func, select
from sqlmodel import col
from sqlmodel import select as orm_select
from starlette.concurrency import run_in_threadpool

from services.alerts import lifecycle
from services.api.auth import Actor, key_active
from services.api.deps import (
    AlertActorKey,
    AlertManagerKey,
    CurrentKey,
    EngineDep,
    SessionDep,
    SettingsDep,
)
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.pagination import keyset_page
from services.api.params import CursorParam, FromParam, LimitParam, ToParam, check_window
from services.api.privacy import check_scope, scope_conditions, sees_full_ids, shown
from services.api.routes.common import IntId, commit_audited, get_or_404, known_filters
from services.api.routes.fever_cases import check_fever_resolution
from services.api.schemas import Page
from services.core.db import utcnow
from services.core.models import Checkpoint, Site
from services.core.models.alerts import (
    Alert,
    AlertHistory,
    AlertHistoryPublic,
    AlertPublic,
    AlertType,
    Severity,
    Silence,
    SilenceCreate,
    SilencePublic,
)
from services.core.tables import alert_t, history_t

log = logging.getLogger(__name__)
router = APIRouter(tags=["alerts"])
ERRORS = problem_responses(401, 403, 404, 409, 422)
STREAM_BATCH = 200


def actor_name(actor: Actor) -> str:
    return f"key:{actor.key_id}:{actor.name}"[:64]


class AlertDetail(AlertPublic):
    history: list[AlertHistoryPublic]


class Acknowledgement(BaseModel):
    note: str | None = Field(default=None, max_length=1000, examples=["on my way"])


class Resolution(BaseModel):
    outcome: str = Field(
        default="resolved",
        min_length=1,
        max_length=64,
        examples=["sent_to_fever_clinic", "false_alarm"],
        description="What was done (default `resolved`)",
    )
    note: str | None = Field(default=None, max_length=1000)
    decided_by: str | None = Field(
        default=None,
        max_length=64,
        description="Fever alerts: the staff id of who decided the disposition (required)",
    )


# --- the live feed (declared before /alerts/{alert_id}) ------------------------------
def fetch_history(engine: Engine, after: int, scope: frozenset[str] | None) -> list[dict[str, Any]]:
    query = (
        select(
            history_t,
            alert_t.c.type,
            alert_t.c.severity,
            alert_t.c.checkpoint_id,
            alert_t.c.site_id,
            alert_t.c.summary,
            alert_t.c.occurrences,
        )
        .join(alert_t, alert_t.c.id == history_t.c.alert_id)
        .where(history_t.c.id > after)
        .order_by(history_t.c.id)
        .limit(STREAM_BATCH)
    )
    if scope is not None:
        query = query.where(alert_t.c.checkpoint_id.in_(sorted(scope)))
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def newest_history_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(history_t.c.id), 0))).scalar_one())


def sse_event(row: dict[str, Any]) -> str:
    data = json.dumps(
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()},
        ensure_ascii=False,
    )
    return f"id: {row['id']}\nevent: alert\ndata: {data}\n\n"


async def alert_feed(
    request: Request, engine: Engine, after: int, actor: Actor
) -> AsyncIterator[str]:
    """Tail `alert_history` past the last id sent: works whichever process wrote it.
    The key is checked again every `sse_key_recheck_s`: a revoked key's stream ends
    (with an `event: revoked`), its EventSource's reconnect then gets a 401; so does a
    stream opened with a dashboard session once the session expires."""
    poll_s: float = getattr(request.app.state, "sse_poll_s", 1.0)
    heartbeat_s: float = getattr(request.app.state, "sse_heartbeat_s", 15.0)
    recheck_s: float = getattr(request.app.state, "sse_key_recheck_s", 5.0)
    scope = actor.scope if actor.role == "duty" else None
    yield "retry: 3000\n\n"
    idle = 0.0
    checked = time.monotonic()
    while not await request.is_disconnected():
        if actor.key_id is not None and time.monotonic() - checked >= recheck_s:
            checked = time.monotonic()
            if actor.session_expires_s is not None and time.time() >= actor.session_expires_s:
                log.info("alert stream of key %d ended: its session expired", actor.key_id)
                yield 'event: revoked\ndata: {"reason": "the session has ended"}\n\n'
                return
            if not await run_in_threadpool(key_active, engine, actor.key_id):
                log.info("alert stream of key %d ended: the key was revoked", actor.key_id)
                yield 'event: revoked\ndata: {"reason": "the API key was revoked"}\n\n'
                return
        rows = await run_in_threadpool(fetch_history, engine, after, scope)
        for row in rows:
            after = int(row["id"])
            yield sse_event(row)
        if rows:
            idle = 0.0
            if len(rows) == STREAM_BATCH:
                continue
        await asyncio.sleep(poll_s)
        idle += poll_s
        if idle >= heartbeat_s:
            idle = 0.0
            yield ": keep-alive\n\n"


@router.get(
    "/alerts/stream",
    response_class=StreamingResponse,
    summary="Live alert feed (Server-Sent Events)",
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: alert` per alert change; `id` is the alert-history id",
        },
        **problem_responses(401, 422),
    },
)
async def stream_alerts(
    request: Request,
    engine: EngineDep,
    actor: CurrentKey,
    after: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="Replay history after this id (0: everything)"),
    ] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """One `alert` event per change of any alert (opened, repeated, acknowledged,
    escalated, resolved). Reconnecting EventSources send `Last-Event-ID` and resume
    where they left off. Browsers cannot set headers on an EventSource: open a session
    first (`POST /session`), whose cookie the stream takes; other clients send the key
    in a header as on every route (never in the URL). Duty keys see their own
    checkpoints only."""
    if last_event_id is not None and last_event_id.isdigit():
        after = int(last_event_id)
    if after is None:
        after = await run_in_threadpool(newest_history_id, engine)
    return StreamingResponse(
        alert_feed(request, engine, after, actor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- alerts ----------------------------------------------------------------------------
@router.get("/alerts", response_model=Page[AlertPublic], responses=ERRORS)
def list_alerts(
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentKey,
    status: Annotated[
        Literal["open", "acknowledged", "resolved", "active"] | None,
        Query(description="`active` = open or acknowledged"),
    ] = None,
    severity: Severity | None = None,
    type: AlertType | None = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    checkpoint_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: FromParam = None,
    to: ToParam = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[AlertPublic]:
    """Newest first (by opening time); `from`/`to` filter the opening time."""
    check_window(from_, to)
    known_filters(session, site_id, checkpoint_id)
    t = alert_t.c
    conditions: list[ColumnElement[bool]] = []
    if status == "active":
        conditions.append(t.status != "resolved")
    elif status is not None:
        conditions.append(t.status == status)
    for column, value in (
        (t.severity, severity),
        (t.type, type),
        (t.site_id, site_id),
        (t.checkpoint_id, checkpoint_id),
    ):
        if value is not None:
            conditions.append(column == str(value))
    if from_ is not None:
        conditions.append(t.opened_at >= from_)
    if to is not None:
        conditions.append(t.opened_at < to)
    conditions += scope_conditions(actor, t.checkpoint_id)  # duty: own checkpoints
    rows, next_cursor = keyset_page(
        session.connection(), alert_t, conditions, cursor, limit, "opened_at"
    )
    full = sees_full_ids(actor, settings)
    return Page[AlertPublic](
        items=[AlertPublic.model_validate(shown(r, full)) for r in rows],
        next_cursor=next_cursor,
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetail, responses=ERRORS)
def get_alert(
    alert_id: IntId, session: SessionDep, settings: SettingsDep, actor: CurrentKey
) -> AlertDetail:
    """Duty keys: alerts of their own checkpoints only."""
    alert = get_or_404(session, Alert, alert_id, "alert")
    check_scope(actor, alert.checkpoint_id)
    history = session.exec(
        orm_select(AlertHistory)
        .where(AlertHistory.alert_id == alert_id)
        .order_by(col(AlertHistory.id))
    )
    return AlertDetail.model_validate(
        {
            **shown(alert.model_dump(), sees_full_ids(actor, settings)),
            "history": [AlertHistoryPublic.model_validate(h) for h in history],
        }
    )


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertPublic, responses=ERRORS)
def acknowledge_alert(
    alert_id: IntId,
    session: SessionDep,
    actor: AlertActorKey,
    body: Annotated[Acknowledgement | None, Body()] = None,
) -> Alert:
    """Duty keys may acknowledge alerts at their own checkpoints only. The body (a note)
    is optional."""
    body = body or Acknowledgement()
    alert: Alert = get_or_404(session, Alert, alert_id, "alert")
    if not actor.may_act_on(alert.checkpoint_id):
        raise ApiProblem(
            403, f"this duty key does not cover checkpoint {alert.checkpoint_id}", "forbidden"
        )
    try:
        updated = lifecycle.acknowledge(session, alert_id, actor_name(actor), body.note)
    except lifecycle.InvalidTransition as exc:
        raise ApiProblem(409, str(exc), "invalid-transition") from None
    commit_audited(session, actor, "alert.acknowledge", f"alert/{alert_id}", body.model_dump())
    session.refresh(updated)
    return updated


@router.post("/alerts/{alert_id}/resolve", response_model=AlertPublic, responses=ERRORS)
def resolve_alert(
    alert_id: IntId,
    session: SessionDep,
    actor: AlertManagerKey,
    body: Annotated[Resolution | None, Body()] = None,
) -> Alert:
    """The body is optional: without one the outcome is `resolved` (a fever needs one)."""
    body = body or Resolution()
    alert: Alert = get_or_404(session, Alert, alert_id, "alert")
    if alert.type == AlertType.FEVER:
        check_fever_resolution(session, body.outcome, body.decided_by)
    try:
        updated = lifecycle.resolve(
            session,
            alert_id,
            actor_name(actor),
            body.outcome,
            body.note,
            decided_by=body.decided_by,
        )
    except lifecycle.InvalidTransition as exc:
        raise ApiProblem(409, str(exc), "invalid-transition") from None
    commit_audited(session, actor, "alert.resolve", f"alert/{alert_id}", body.model_dump())
    session.refresh(updated)
    return updated


# --- silences --------------------------------------------------------------------------
class SilenceRequest(BaseModel):
    site_id: str | None = Field(default=None, max_length=64)
    checkpoint_id: str | None = Field(default=None, max_length=64, examples=["cp-001"])
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: str = Field(min_length=1, max_length=500, examples=["gate closed for repairs"])


@router.get("/silences", response_model=list[SilencePublic], responses=ERRORS)
def list_silences(
    session: SessionDep,
    _actor: CurrentKey,
    active: Annotated[bool, Query(description="only those not lifted nor over")] = True,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Silence]:
    query = orm_select(Silence).order_by(col(Silence.id).desc()).limit(limit)
    if active:
        query = query.where(col(Silence.lifted_at).is_(None), Silence.ends_at > utcnow())
    return list(session.exec(query))


@router.post("/silences", response_model=SilencePublic, status_code=201, responses=ERRORS)
def create_silence(body: SilenceRequest, session: SessionDep, actor: AlertManagerKey) -> Silence:
    if body.site_id is not None and session.get(Site, body.site_id) is None:
        raise invalid_field("body.site_id", "names no existing site")
    if body.checkpoint_id is not None and session.get(Checkpoint, body.checkpoint_id) is None:
        raise invalid_field("body.checkpoint_id", "names no existing checkpoint")
    try:
        silence = lifecycle.create_silence(
            session, SilenceCreate.model_validate(body.model_dump()), actor_name(actor)
        )
    except lifecycle.InvalidSilence as exc:
        raise ApiProblem(422, str(exc), "validation-error") from None
    commit_audited(
        session, actor, "silence.create", f"silence/{silence.id}", body.model_dump(), silence
    )
    return silence


@router.post("/silences/{silence_id}/lift", response_model=SilencePublic, responses=ERRORS)
def lift_silence(silence_id: IntId, session: SessionDep, actor: AlertManagerKey) -> Silence:
    try:
        silence = lifecycle.lift_silence(session, silence_id, actor_name(actor))
    except lifecycle.SilenceNotFound as exc:
        raise ApiProblem(404, str(exc)) from None
    except lifecycle.InvalidSilence as exc:
        raise ApiProblem(409, str(exc)) from None
    commit_audited(session, actor, "silence.lift", f"silence/{silence_id}", None, silence)
    return silence
