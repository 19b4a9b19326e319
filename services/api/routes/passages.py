"""Passages and readings: filters, cursor pagination (newest first), streamed CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import ColumnElement, Engine, Table, and_, or_, select

from services.api.deps import CurrentKey, EngineDep, SessionDep
from services.api.errors import problem_responses
from services.api.params import (
    CursorParam,
    FromParam,
    LimitParam,
    ToParam,
    check_window,
    decode_cursor,
    encode_cursor,
)
from services.api.schemas import Page
from services.core.enums import Registration
from services.core.models.events import PassagePublic, ReadingPublic
from services.core.tables import checkpoint_t, passage_t, reading_t

router = APIRouter(tags=["data"])
EXPORT_PAGE = 5000
Slug = Annotated[str | None, Query(max_length=64)]


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
    from_: FromParam = None,
    to: ToParam = None,
    site_id: Slug = None,
    checkpoint_id: Slug = None,
    direction: Literal["in", "out"] | None = None,
    kind: Literal["person", "vehicle"] | None = None,
    registration: Registration | None = None,
    screened: bool | None = None,
    quarantined: bool | None = None,
) -> list[ColumnElement[bool]]:
    conditions = common_filters(passage_t, site_id, checkpoint_id, from_, to, direction)
    t = passage_t.c
    if kind is not None:
        conditions.append(t.kind == kind)
    if registration is not None:
        conditions.append(t.registration == registration.value)
    if screened is not None:
        conditions.append(t.screened.is_(screened))
    if quarantined is not None:
        conditions.append(t.quarantined.is_(quarantined))
    return conditions


def reading_filters(
    from_: FromParam = None,
    to: ToParam = None,
    site_id: Slug = None,
    checkpoint_id: Slug = None,
    direction: Literal["in", "out"] | None = None,
    fever: bool | None = None,
    implausible: bool | None = None,
) -> list[ColumnElement[bool]]:
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


def keyset_page(
    conn: Any,
    table: Table,
    conditions: list[ColumnElement[bool]],
    cursor: str | None,
    limit: int,
    time_column: str = "ts",
    extra: Sequence[Any] = (),
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; the cursor is the (time, id) of the last row returned. `extra`:
    columns computed beside the table's own (labelled)."""
    ts_col, id_col = table.c[time_column], table.c.id
    query = select(table, *extra).where(*conditions)
    if cursor is not None:
        ts, row_id = decode_cursor(cursor)
        query = query.where(or_(ts_col < ts, and_(ts_col == ts, id_col < row_id)))
    rows = [
        dict(r)
        for r in conn.execute(
            query.order_by(ts_col.desc(), id_col.desc()).limit(limit + 1)
        ).mappings()
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1][time_column], rows[-1]["id"]) if more else None


def stream_csv(
    engine: Engine,
    table: Table,
    conditions: list[ColumnElement[bool]],
    columns: list[str],
    extra: Sequence[Any] = (),
) -> Iterator[str]:
    """Page through with the same keyset as the API, so memory stays flat however many
    rows the export holds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    yield buffer.getvalue()
    cursor: str | None = None
    while True:
        with engine.connect() as conn:
            rows, cursor = keyset_page(conn, table, conditions, cursor, EXPORT_PAGE, extra=extra)
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow(
                [v.isoformat() if isinstance(v, datetime) else v for v in (row[c] for c in columns)]
            )
        yield buffer.getvalue()
        if cursor is None:
            return


PASSAGE_COLUMNS = list(PassagePublic.model_fields)
PASSAGE_EXTRA = (screening_temp(),)
READING_COLUMNS = list(ReadingPublic.model_fields)
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, newest first"}
}


@router.get(
    "/passages",
    response_model=Page[PassagePublic],
    summary="Passages, newest first, filtered",
    responses=problem_responses(401, 422),
)
def list_passages(
    session: SessionDep,
    _actor: CurrentKey,
    conditions: PassageFilters,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[PassagePublic]:
    rows, next_cursor = keyset_page(
        session.connection(), passage_t, conditions, cursor, limit, extra=PASSAGE_EXTRA
    )
    return Page[PassagePublic](
        items=[PassagePublic.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@router.get(
    "/passages/export.csv",
    response_class=StreamingResponse,
    summary="Passages as CSV (streamed), same filters",
    responses={**CSV_RESPONSE, **problem_responses(401, 422)},
)
def export_passages(
    engine: EngineDep, _actor: CurrentKey, conditions: PassageFilters
) -> StreamingResponse:
    return StreamingResponse(
        stream_csv(engine, passage_t, conditions, PASSAGE_COLUMNS, PASSAGE_EXTRA),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="passages.csv"'},
    )


@router.get(
    "/readings",
    response_model=Page[ReadingPublic],
    summary="Temperature readings, newest first, filtered",
    responses=problem_responses(401, 422),
)
def list_readings(
    session: SessionDep,
    _actor: CurrentKey,
    conditions: ReadingFilters,
    cursor: CursorParam = None,
    limit: LimitParam = 100,
) -> Page[ReadingPublic]:
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
    engine: EngineDep, _actor: CurrentKey, conditions: ReadingFilters
) -> StreamingResponse:
    return StreamingResponse(
        stream_csv(engine, reading_t, conditions, READING_COLUMNS),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="readings.csv"'},
    )
