"""Dead letters (admin): what devices sent that could not be understood, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select

from services.api.deps import AdminKey, SessionDep
from services.api.errors import problem_responses
from services.api.pagination import keyset_page
from services.api.params import CursorParam, FromParam, LimitParam, ToParam, check_window
from services.api.schemas import DeadLetterSummary, Page
from services.core.enums import DeadLetterReason
from services.core.tables import dead_letter_t

router = APIRouter(prefix="/dead-letters", tags=["data"])


class DeadLetterPublic(BaseModel):
    id: int
    received_at: datetime
    topic: str
    checkpoint_id: str | None
    kind: str | None
    reason: str
    detail: str
    payload: str
    payload_bytes: int


def _filters(
    reason: DeadLetterReason | None,
    checkpoint_id: str | None,
    start: datetime | None,
    end: datetime | None,
) -> list[ColumnElement[bool]]:
    check_window(start, end)
    t = dead_letter_t.c
    conditions: list[ColumnElement[bool]] = []
    if reason is not None:
        conditions.append(t.reason == reason.value)
    if checkpoint_id is not None:
        conditions.append(t.checkpoint_id == checkpoint_id)
    if start is not None:
        conditions.append(t.received_at >= start)
    if end is not None:
        conditions.append(t.received_at < end)
    return conditions


@router.get(
    "",
    response_model=Page[DeadLetterPublic],
    summary="Dead letters, newest first (payloads truncated, ID numbers masked)",
    responses=problem_responses(401, 403, 422),
)
def list_dead_letters(
    session: SessionDep,
    _actor: AdminKey,
    reason: DeadLetterReason | None = None,
    checkpoint_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: FromParam = None,
    to: ToParam = None,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[DeadLetterPublic]:
    conditions = _filters(reason, checkpoint_id, from_, to)
    rows, next_cursor = keyset_page(
        session.connection(), dead_letter_t, conditions, cursor, limit, "received_at"
    )
    return Page[DeadLetterPublic](
        items=[DeadLetterPublic.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/summary",
    response_model=list[DeadLetterSummary],
    summary="Dead letters counted by reason code",
    responses=problem_responses(401, 403, 422),
)
def summarise_dead_letters(
    session: SessionDep,
    _actor: AdminKey,
    checkpoint_id: Annotated[str | None, Query(max_length=64)] = None,
    from_: FromParam = None,
    to: ToParam = None,
) -> list[DeadLetterSummary]:
    t = dead_letter_t.c
    rows = session.connection().execute(
        select(t.reason, func.count(), func.max(t.received_at))
        .where(*_filters(None, checkpoint_id, from_, to))
        .group_by(t.reason)
        .order_by(func.count().desc(), t.reason)
    )
    return [
        DeadLetterSummary(reason=reason, count=count, last_received_at=last)
        for reason, count, last in rows
    ]
