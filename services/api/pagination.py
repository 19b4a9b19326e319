"""Keyset pagination (newest first, by time and id) and CSV exports streamed with the
same keyset, shared by every list endpoint."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from fastapi.responses import StreamingResponse
from sqlalchemy import ColumnElement, Engine, Table, and_, or_, select

from services.api.params import decode_cursor, encode_cursor

log = logging.getLogger(__name__)

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


# OWASP CSV injection: a cell a spreadsheet would read as a formula (a QR code printed
# as `=HYPERLINK(...)` is held up to a reader by anyone) gets a leading quote. The
# full-width forms are there because some spreadsheet locales convert them to ASCII.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
BOM = "\ufeff"  # so Excel opens UTF-8 (Chinese names) correctly
END_MARKER = "# end of export: {rows} rows"


def csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def stream_csv(
    engine: Engine,
    table: Table,
    conditions: list[ColumnElement[bool]],
    columns: list[str],
    extra: Sequence[Any] = (),
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Iterator[str]:
    """Page through with the same keyset as the API, so memory stays flat however many
    rows the export holds. The first page is read before anything is sent, so a filter
    the database refuses is a 4xx; a failure after that raises, and the server aborts
    the chunked body instead of ending it: a client sees an incomplete transfer, and the
    closing `# end of export` line is missing from what it got."""
    with engine.connect() as conn:
        rows, cursor = keyset_page(conn, table, conditions, None, EXPORT_PAGE, extra=extra)
    return _csv_pages(engine, table, conditions, columns, extra, rows, cursor, transform)


def _csv_pages(
    engine: Engine,
    table: Table,
    conditions: list[ColumnElement[bool]],
    columns: list[str],
    extra: Sequence[Any],
    rows: list[dict[str, Any]],
    cursor: str | None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow(columns)
    written = 0
    while True:
        for row in rows:
            if transform is not None:
                row = transform(row)
            writer.writerow([csv_cell(row[c]) for c in columns])
        written += len(rows)
        if cursor is None:
            buffer.write(END_MARKER.format(rows=written) + "\r\n")
            yield buffer.getvalue()
            return
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        try:
            with engine.connect() as conn:
                rows, cursor = keyset_page(
                    conn, table, conditions, cursor, EXPORT_PAGE, extra=extra
                )
        except Exception:
            log.exception("CSV export of %s failed after %d rows: aborting", table.name, written)
            raise


def csv_response(
    engine: Engine,
    table: Table,
    conditions: list[ColumnElement[bool]],
    columns: list[str],
    filename: str,
    extra: Sequence[Any] = (),
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> StreamingResponse:
    return StreamingResponse(
        stream_csv(engine, table, conditions, columns, extra, transform),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
