"""Query shapes that both engines can answer from an index, whatever the batch size."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import String, and_, any_, bindparam, func
from sqlalchemy.dialects.postgresql import ARRAY


def join_pairs(dialect: str, table: Any, key_column: Any, pairs: set[tuple[str, str]]) -> Any:
    """The rows whose (checkpoint_id, `key_column`) is one of `pairs`, as a join with the
    pairs passed as one parameter: an index look-up per pair on both engines (SQLite
    answers a row-value IN list by scanning the whole table), and a query text that does
    not grow with the batch."""
    ordered = sorted(pairs)
    cp: Any
    key: Any
    if dialect == "postgresql":
        wanted = (
            func.unnest(
                bindparam("cps", [pair[0] for pair in ordered], type_=ARRAY(String)),
                bindparam("keys", [pair[1] for pair in ordered], type_=ARRAY(String)),
            )
            .table_valued("cp", "msg_id")
            .render_derived(name="wanted")
        )
        cp, key = wanted.c.cp, wanted.c.msg_id
    else:
        wanted = func.json_each(bindparam("pairs", json.dumps(ordered))).table_valued(
            "value", name="wanted"
        )
        cp = func.json_extract(wanted.c.value, "$[0]")
        key = func.json_extract(wanted.c.value, "$[1]")
    return wanted.join(table, and_(table.c.checkpoint_id == cp, key_column == key))


def one_of(dialect: str, column: Any, values: Iterable[Any]) -> Any:
    """`column IN values`, as one array parameter on PostgreSQL (`= ANY(...)`): the
    query text stays the same whatever the number of values, so neither the driver nor
    the server parses a new statement with hundreds of placeholders for every batch."""
    listed = list(values)
    if dialect == "postgresql":
        return column == any_(bindparam(None, listed, type_=ARRAY(column.type)))
    return column.in_(listed)
