"""SQL building blocks of the coverage queries (both engines)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text

from services.core.db import UTCDateTime


def epoch_sql(dialect: str, column: str) -> str:
    """SQL for a timestamp column as integer epoch seconds (computed by the database)."""
    if dialect == "sqlite":
        return f"CAST(strftime('%s', {column}) AS INTEGER)"
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"


def scope_sql(checkpoints: Sequence[str] | None, column: str = "checkpoint_id") -> str:
    return "" if checkpoints is None else f" AND {column} IN :cps"


def bind_window(
    sql: str, start: datetime, end: datetime, checkpoints: Sequence[str] | None
) -> tuple[Any, dict[str, Any]]:
    statement = text(sql).bindparams(bindparam("start", type_=UTCDateTime()))
    params: dict[str, Any] = {"start": start}
    if ":end" in sql:
        statement = statement.bindparams(bindparam("end", type_=UTCDateTime()))
        params["end"] = end
    if checkpoints is not None:
        statement = statement.bindparams(bindparam("cps", expanding=True))
        params["cps"] = list(checkpoints)
    return statement, params
