"""Keyset pagination (newest first, by time and id) and CSV exports streamed with the
same keyset, shared by every list endpoint."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from fastapi.responses import StreamingResponse
from sqlalchemy import ColumnElement, Engine, Table, and_, or_, select

from services.api.params import decode_cursor, encode_cursor

EXPORT_PAGE = 5000
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV, newest first"}
}


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


def csv_response(
    engine: Engine,
    table: Table,
    conditions: list[ColumnElement[bool]],
    columns: list[str],
    filename: str,
    extra: Sequence[Any] = (),
) -> StreamingResponse:
    return StreamingResponse(
        stream_csv(engine, table, conditions, columns, extra),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
