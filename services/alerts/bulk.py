"""The alert path's multi-row writes, and the plans its statements run with.

PostgreSQL gets one statement per table per batch with a column of values per
parameter (`unnest` of arrays): a constant query text that psycopg converts once and the
server parses once, where a multi-row VALUES list of ~500 rows x 17 columns was a new
text of 8,500 placeholders every pass (converted by psycopg in Python, ~25 ms each, a
third of a pass under issue 19's stuck clock, 2026-12-02). SQLite keeps SQLAlchemy's
multi-row inserts.

`plans_for_now`: PostgreSQL checks each row's foreign key with a query planned once per
session; planned while `alert` was nearly empty it stays a sequential scan as the table
grows (until autovacuum analyzes it), and every history row then read the whole alert
table (a 500-row history insert: 40 ms at 1,000 alerts, 210 ms at 3,500, measured with
auto_explain's trigger times). A transaction that writes alert rows asks for plans made
for the tables as they are now.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Float, Table, insert
from sqlalchemy.dialects import postgresql

from services.core.tables import dialect_insert

_PG_DIALECT = postgresql.dialect()


def plans_for_now(conn: Connection) -> None:
    """Plan this transaction's statements (foreign-key checks included) for the tables
    as they are now, not as they were when the session first ran them (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")


@cache
def _pg_array_type(table: Table, column: str) -> str:
    column_type = table.c[column].type
    if isinstance(column_type, JSON):
        return "text[]"  # sent as JSON text, cast per value below
    return f"{column_type.compile(dialect=_PG_DIALECT)}[]"


@cache
def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.c if isinstance(c.type, JSON))


@cache
def _float_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.c if isinstance(c.type, Float))


def _pg_select(table: Table, columns: Sequence[str]) -> str:
    """`SELECT <columns> FROM unnest(<one array parameter per column>)`."""
    jsons = _json_columns(table)
    # %(...)b: binary parameters, which psycopg dumps about five times faster than text
    arrays = ", ".join(f"%({c})b::{_pg_array_type(table, c)}" for c in columns)
    values = ", ".join(f"v.{c}::json" if c in jsons else f"v.{c}" for c in columns)
    return f"SELECT {values} FROM unnest({arrays}) AS v({', '.join(columns)})"


def _pg_arrays(
    table: Table, rows: Sequence[dict[str, Any]], columns: Sequence[str]
) -> dict[str, list[Any]]:
    """A list of values per column: JSON as its text (what SQLAlchemy's JSON type would
    send), whole numbers in a float column as floats (a binary array holds one type)."""
    jsons, floats = _json_columns(table), _float_columns(table)
    arrays: dict[str, list[Any]] = {}
    for c in columns:
        values = [row[c] for row in rows]
        if c in jsons:
            values = [None if v is None else json.dumps(v) for v in values]
        elif c in floats:
            values = [None if v is None else float(v) for v in values]
        arrays[c] = values
    return arrays


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys, in one statement per batch."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        # asking for the ids makes SQLAlchemy send multi-row VALUES ("insertmanyvalues")
        conn.execute(insert(table).returning(table.c.id), list(rows))
        return
    columns = list(rows[0])
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) {_pg_select(table, columns)}"
    conn.exec_driver_sql(sql, _pg_arrays(table, rows, columns))


def upsert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: str,
    *,
    add: Sequence[str] = (),
    replace: Sequence[str] = (),
    returning: Sequence[str],
) -> list[Any]:
    """Insert rows whose `key` is new; for a key already stored, add the `add` columns
    to the stored ones and overwrite `replace` (with neither: leave it alone, and it is
    not returned). One statement; the rows must not repeat a key. Returns `returning`
    of every row inserted or updated."""
    if not rows:
        return []
    sets = [f"{c} = {table.name}.{c} + excluded.{c}" for c in add]
    sets += [f"{c} = excluded.{c}" for c in replace]
    action = f"DO UPDATE SET {', '.join(sets)}" if sets else "DO NOTHING"
    tail = f"ON CONFLICT ({key}) {action} RETURNING {', '.join(returning)}"
    columns = list(rows[0])
    if conn.dialect.name == "postgresql":
        head = f"INSERT INTO {table.name} ({', '.join(columns)}) {_pg_select(table, columns)}"
        return list(conn.exec_driver_sql(f"{head} {tail}", _pg_arrays(table, rows, columns)))
    statement = dialect_insert(conn, table)
    if sets:
        statement = statement.on_conflict_do_update(
            index_elements=[key],
            set_={
                **{c: table.c[c] + statement.excluded[c] for c in add},
                **{c: statement.excluded[c] for c in replace},
            },
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=[key])
    return list(conn.execute(statement.returning(*(table.c[c] for c in returning)), list(rows)))
