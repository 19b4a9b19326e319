"""Set-based statements for the hot path, one per table per batch, below SQLAlchemy's
per-row overhead.

PostgreSQL gets one statement per operation with a column of values per parameter
(`unnest` of arrays: a constant query text, parsed and planned once). SQLite gets
multi-row VALUES lists and executemany, with timestamps written exactly as SQLAlchemy
writes them, so everything reads back through the models unchanged.

Statements run on the driver's own cursor (`run`, `run_many`), in the transaction of
the caller's SQLAlchemy connection: `exec_driver_sql` spent ~20 µs a statement and ~2 µs
a returned row (its `Row` objects) on top of the driver, for ~25 statements a batch;
at the batch sizes of a few thousand messages a second (a few hundred) that was ~10%
of the writer. Errors are raised as SQLAlchemy's, as `exec_driver_sql` raises them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from itertools import chain
from operator import itemgetter
from typing import Any, overload

from sqlalchemy import Connection, DateTime, Float, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from services.core.db import UTCDateTime

SQLITE_MAX_VARIABLES = 32766
SQLITE_MAX_CHUNK_ROWS = 256
_PG_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]  # unannotated


STAMP_TEXTS_KEPT = 65536
_stamp_texts: dict[datetime, str] = {}


def sqlite_value(value: Any) -> Any:
    """What SQLAlchemy's SQLite DATETIME stores for a UTC timestamp (naive, UTC)."""
    if isinstance(value, datetime):
        zone = value.tzinfo
        if zone is UTC:
            # a batch writes each instant several times (ts, device_ts, its reading, its
            # roll-up): the text is made once; equal UTC instants have equal texts
            text = _stamp_texts.get(value)
            if text is None:
                if len(_stamp_texts) >= STAMP_TEXTS_KEPT:
                    _stamp_texts.clear()
                text = _stamp_texts[value] = value.isoformat(" ", "microseconds")[:-6]
            return text
        if zone is not None and not zone.utcoffset(value):
            # a UTC time (whatever its tzinfo object): its text without "+00:00"
            return value.isoformat(" ", "microseconds")[:-6]
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def _cursor(conn: Connection) -> Any:
    """A cursor of the driver's connection under `conn` (in its transaction)."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def run(conn: Connection, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """Execute one statement on the driver's cursor; its rows (if it returns any)."""
    cursor = _cursor(conn)
    try:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []
    except conn.dialect.loaded_dbapi.Error as error:
        raise _wrapped(conn, sql, params, error, cursor) from error
    finally:
        cursor.close()


def run_many(conn: Connection, sql: str, rows: Sequence[Any]) -> None:
    """Execute one statement for each parameter set (the driver's executemany)."""
    cursor = _cursor(conn)
    try:
        cursor.executemany(sql, rows)
    except conn.dialect.loaded_dbapi.Error as error:
        raise _wrapped(conn, sql, rows, error, cursor) from error
    finally:
        cursor.close()


def _wrapped(conn: Connection, sql: str, params: Any, error: Exception, cursor: Any) -> Exception:
    """The driver's error as SQLAlchemy raises it (OperationalError, IntegrityError...):
    what `BatchProcessor` tells transient failures and refused rows apart by. A lost
    connection is invalidated, so the pool does not hand it out again."""
    lost = conn.dialect.is_disconnect(
        error,  # type: ignore[arg-type]  # the driver's Error: typed as PEP 249's
        conn.connection.dbapi_connection,
        cursor,
    )
    if lost:
        conn.invalidate(error)
    return DBAPIError.instance(
        sql,
        params,
        error,
        conn.dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=conn.dialect,
    )


@overload
def utc_stamp(value: datetime | str) -> datetime: ...
@overload
def utc_stamp(value: datetime | str | None) -> datetime | None: ...
def utc_stamp(value: datetime | str | None) -> datetime | None:
    """A timestamp as read below SQLAlchemy, as UTCDateTime returns it: PostgreSQL gives
    aware datetimes, SQLite naive UTC text. Always the one UTC tzinfo object: comparing
    aware datetimes with two tzinfo objects calls utcoffset() on both, ~15x the cost."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def select_in(
    conn: Connection, table: Table, columns: Sequence[str], key: str, values: Iterable[Any]
) -> list[Any]:
    """`SELECT columns FROM table WHERE key IN values` as driver SQL whose text does not
    depend on the values (one array or JSON parameter): no statement built and compiled
    per batch, no per-row result processing (timestamps: `utc_stamp`)."""
    listed = list(values)
    if not listed:
        return []
    head = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {key}"
    if conn.dialect.name == "postgresql":
        return run(conn, f"{head} = ANY(%(keys)s)", {"keys": listed})
    return run(conn, f"{head} IN (SELECT value FROM json_each(?))", (json.dumps(listed),))


def _sqlite_rows(
    table: Table, rows: Sequence[dict[str, Any]], columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    """Rows as parameter tuples, converting only the timestamp columns."""
    stamps = _timestamp_columns(table)
    at = [n for n, column in enumerate(columns) if column in stamps]
    if len(columns) == 1:
        return [(sqlite_value(row[columns[0]]) if at else row[columns[0]],) for row in rows]
    values = itemgetter(*columns)
    if not at:
        return [values(row) for row in rows]
    out: list[tuple[Any, ...]] = []
    for row in rows:
        converted = list(values(row))
        for n in at:
            converted[n] = sqlite_value(converted[n])
        out.append(tuple(converted))
    return out


@cache
def _timestamp_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.c if isinstance(c.type, UTCDateTime | DateTime))


@cache
def _pg_array_type(table: Table, column: str) -> str:
    compiled = table.c[column].type.compile(dialect=_PG_DIALECT)
    return f"{compiled}[]"


def pg_unnest(table: Table, columns: Sequence[str], names: Sequence[str] = ()) -> str:
    """`unnest(arrays) AS v(names)`: a row per value, typed as `table`'s `columns`; the
    parameters are called `names` (the columns' own names by default)."""
    names = names or columns
    # %(...)b: binary parameters, which psycopg dumps about five times faster than text
    casts = ", ".join(
        f"%({n})b::{_pg_array_type(table, c)}" for n, c in zip(names, columns, strict=True)
    )
    return f"unnest({casts}) AS v({', '.join(names)})"


@cache
def _float_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.c if isinstance(c.type, Float))


def pg_arrays(
    table: Table, rows: Sequence[dict[str, Any]], columns: Sequence[str], names: Sequence[str] = ()
) -> dict[str, list[Any]]:
    """A list of values per column (rows and parameters keyed by `names`, the columns'
    own names by default). A binary array holds one type: a whole number in a float
    column (`"temp_c": 37`) is made a float, or the batch could not be dumped."""
    floats = _float_columns(table)
    return {
        n: [None if row[n] is None else float(row[n]) for row in rows]
        if c in floats
        else [row[n] for row in rows]
        for n, c in zip(names or columns, columns, strict=True)
    }


def insert_new(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    returning: Sequence[str] = ("id",),
) -> list[Any]:
    """Insert rows, skipping those whose key is already stored (redeliveries).
    Returns `returning + keys` of the rows actually inserted, as tuples."""
    if not rows:
        return []
    columns = list(rows[0])
    out = ", ".join([*returning, *keys])
    conflict = f"ON CONFLICT ({', '.join(keys)}) DO NOTHING RETURNING {out}"
    if conn.dialect.name == "postgresql":
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT * FROM {pg_unnest(table, columns)} {conflict}"
        )
        return run(conn, sql, pg_arrays(table, rows, columns))
    inserted: list[Any] = []
    row_marks = "(" + ", ".join("?" * len(columns)) + ")"
    start = 0
    for size in sqlite_chunks(len(rows), len(columns)):
        chunk = rows[start : start + size]
        start += size
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
            f"{', '.join([row_marks] * size)} {conflict}"
        )
        params = tuple(chain.from_iterable(_sqlite_rows(table, chunk, columns)))
        inserted.extend(run(conn, sql, params))
    return inserted


def sqlite_chunks(rows: int, columns: int) -> list[int]:
    """Statement sizes (in rows) that add up to `rows`: powers of two, largest first, at
    most SQLITE_MAX_CHUNK_ROWS. SQLite keeps each prepared statement by its text; with a
    statement per batch size, that cache held ~100 compiled 1,000-row INSERTs (tens of
    MB) that were never used again. With these sizes a dozen texts per table recur, and
    are prepared once."""
    largest = SQLITE_MAX_CHUNK_ROWS
    while largest > 1 and largest * columns > SQLITE_MAX_VARIABLES:
        largest //= 2
    sizes = [largest] * (rows // largest)
    rest = rows % largest
    size = largest // 2
    while rest:
        if rest >= size:
            sizes.append(size)
            rest -= size
        size //= 2
    return sizes


def update_by_id(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], only_if: str = ""
) -> None:
    """`UPDATE table SET col = value ... WHERE id = row['id']` for every row (same keys).
    `only_if` is an extra SQL condition on the target row `t`, e.g. `t.screened = false`."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != "id"]
    extra = f" AND {only_if}" if only_if else ""
    if conn.dialect.name == "postgresql":
        sets = ", ".join(f"{c} = v.{c}" for c in columns)
        sql = (
            f"UPDATE {table.name} AS t SET {sets} FROM {pg_unnest(table, ['id', *columns])} "
            f"WHERE t.id = v.id{extra}"
        )
        run(conn, sql, pg_arrays(table, rows, ["id", *columns]))
        return
    sets = ", ".join(f"{c} = ?" for c in columns)
    sql = f"UPDATE {table.name} AS t SET {sets} WHERE t.id = ?{extra}"
    run_many(conn, sql, _sqlite_rows(table, rows, [*columns, "id"]))


def add_counters(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    counters: Sequence[str],
) -> None:
    """Insert counter rows, or add them to the stored ones (roll-ups)."""
    if not rows:
        return
    columns = [*keys, *counters]
    sets = ", ".join(f"{c} = {table.name}.{c} + excluded.{c}" for c in counters)
    conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    if conn.dialect.name == "postgresql":
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT * FROM {pg_unnest(table, columns)} {conflict}"
        )
        run(conn, sql, pg_arrays(table, rows, columns))
        return
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks}) {conflict}"
    run_many(conn, sql, _sqlite_rows(table, rows, columns))
