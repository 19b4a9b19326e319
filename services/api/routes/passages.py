"""Passages and readings: filters, cursor pages (newest first) and streamed CSV
(pagination.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import ColumnElement, Table, select

from services.api.deps import CurrentKey, EngineDep, SessionDep, SettingsDep
from services.api.errors import problem_responses
from services.api.pagination import CSV_RESPONSE, csv_response, keyset_page
from services.api.params import (
    CursorParam,
    FromParam,
    LimitParam,
    ToParam,
    check_window,
)
from services.api.privacy import audit_bulk_read, scope_conditions, sees_full_ids, shown
from services.api.routes.common import known_filters
from services.api.schemas import Page
from services.core.enums import Registration
from services.core.models.events import PassagePublic, ReadingPublic
from services.core.tables import checkpoint_t, passage_t, reading_t

router = APIRouter(tags=["data"])
# no control characters: a NUL is refused by PostgreSQL, and so a 422 here
Slug = Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")]
UNREGISTERED = "unregistered"


def common_filters(
    table: Table,
    site_id: str | None,
    checkpoint_id: str | None,
    start: datetime | None,
    end: datetime | None,
    direction: str | None,
) -> list[ColumnElement[bool]]:
    check_window(start, end)
    conditions: list[ColumnElement[bool]] = []
    if site_id is not None:
        conditions.append(
            table.c.checkpoint_id.in_(
                select(checkpoint_t.c.id).where(checkpoint_t.c.site_id == site_id)
            )
        )
    if checkpoint_id is not None:
        conditions.append(table.c.checkpoint_id == checkpoint_id)
    if start is not None:
        conditions.append(table.c.ts >= start)
    if end is not None:
        conditions.append(table.c.ts < end)
    if direction is not None:
        conditions.append(table.c.direction == direction)
    return conditions


def passage_filters(
    session: SessionDep,
    from_: FromParam = None,
    to: ToParam = None,
    site_id: Slug = None,
    checkpoint_id: Slug = None,
    direction: Literal["in", "out"] | None = None,
    kind: Literal["person", "vehicle"] | None = None,
    registration: Annotated[
        Registration | Literal["unregistered"] | None,
        Query(
            description="One class, or `unregistered`: every class but `registered` (what "
            "the coverage metric's `unregistered` counts)"
        ),
    ] = None,
    screened: bool | None = None,
    quarantined: bool | None = None,
) -> list[ColumnElement[bool]]:
    known_filters(session, site_id, checkpoint_id)
    conditions = common_filters(passage_t, site_id, checkpoint_id, from_, to, direction)
    t = passage_t.c
    if kind is not None:
        conditions.append(t.kind == kind)
    if registration == UNREGISTERED:
        conditions.append(t.registration != Registration.REGISTERED.value)
    elif registration is not None:
        conditions.append(t.registration == Registration(registration).value)
    if screened is not None:
        conditions.append(t.screened.is_(screened))
    if quarantined is not None:
        conditions.append(t.quarantined.is_(quarantined))
    return conditions


def reading_filters(
    session: SessionDep,
    from_: FromParam = None,
    to: ToParam = None,
    site_id: Slug = None,
    checkpoint_id: Slug = None,
    direction: Literal["in", "out"] | None = None,
    fever: bool | None = None,
    implausible: bool | None = None,
) -> list[ColumnElement[bool]]:
    known_filters(session, site_id, checkpoint_id)
    conditions = common_filters(reading_t, site_id, checkpoint_id, from_, to, direction)
    if fever is not None:
        conditions.append(reading_t.c.fever.is_(fever))
    if implausible is not None:
        conditions.append(reading_t.c.implausible.is_(implausible))
    return conditions


PassageFilters = Annotated[list[ColumnElement[bool]], Depends(passage_filters)]
ReadingFilters = Annotated[list[ColumnElement[bool]], Depends(reading_filters)]


def screening_temp() -> Any:
    """A passage's screening temperature: the reading it names, by primary key."""
    return (
        select(reading_t.c.temp_c)
        .where(reading_t.c.id == passage_t.c.reading_id)
        .scalar_subquery()
        .label("screening_temp_c")
    )


PASSAGE_COLUMNS = list(PassagePublic.model_fields)
PASSAGE_EXTRA = (screening_temp(),)
READING_COLUMNS = list(ReadingPublic.model_fields)


@router.get(
    "/passages",
    response_model=Page[PassagePublic],
    summary="Passages, newest first, filtered",
    responses=problem_responses(401, 422),
)
def list_passages(
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentKey,
    conditions: PassageFilters,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[PassagePublic]:
    """Duty keys: their own checkpoints only. The masked ID: officers and admins see the
    longer form, every other role the last 4 characters."""
    conditions = conditions + scope_conditions(actor, passage_t.c.checkpoint_id)
    rows, next_cursor = keyset_page(
        session.connection(), passage_t, conditions, cursor, limit, extra=PASSAGE_EXTRA
    )
    full = sees_full_ids(actor, settings)
    return Page[PassagePublic](
        items=[PassagePublic.model_validate(shown(r, full)) for r in rows],
        next_cursor=next_cursor,
    )


@router.get(
    "/passages/export.csv",
    response_class=StreamingResponse,
    summary="Passages as CSV (streamed), same filters",
    responses={**CSV_RESPONSE, **problem_responses(401, 422)},
)
def export_passages(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    actor: CurrentKey,
    conditions: PassageFilters,
) -> StreamingResponse:
    """Duty keys: their own checkpoints only; masked IDs as in the list."""
    full = sees_full_ids(actor, settings)
    audit_bulk_read(engine, actor, "passages.export", {"filters": dict(request.query_params)})
    return csv_response(
        engine,
        passage_t,
        conditions + scope_conditions(actor, passage_t.c.checkpoint_id),
        PASSAGE_COLUMNS,
        "passages.csv",
        PASSAGE_EXTRA,
        transform=lambda row: shown(row, full),
    )


@router.get(
    "/readings",
    response_model=Page[ReadingPublic],
    summary="Temperature readings, newest first, filtered",
    responses=problem_responses(401, 422),
)
def list_readings(
    session: SessionDep,
    actor: CurrentKey,
    conditions: ReadingFilters,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[ReadingPublic]:
    """Duty keys: their own checkpoints only."""
    conditions = conditions + scope_conditions(actor, reading_t.c.checkpoint_id)
    rows, next_cursor = keyset_page(session.connection(), reading_t, conditions, cursor, limit)
    return Page[ReadingPublic](
        items=[ReadingPublic.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/readings/export.csv",
    response_class=StreamingResponse,
    summary="Readings as CSV (streamed), same filters",
    responses={**CSV_RESPONSE, **problem_responses(401, 422)},
)
def export_readings(
    request: Request, engine: EngineDep, actor: CurrentKey, conditions: ReadingFilters
) -> StreamingResponse:
    """Duty keys: their own checkpoints only."""
    audit_bulk_read(engine, actor, "readings.export", {"filters": dict(request.query_params)})
    conditions = conditions + scope_conditions(actor, reading_t.c.checkpoint_id)
    return csv_response(engine, reading_t, conditions, READING_COLUMNS, "readings.csv")
