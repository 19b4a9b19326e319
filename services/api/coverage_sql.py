"""SQL building blocks of the coverage queries (both engines), as SQLAlchemy Core."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, cast, extract, func


def epoch_seconds(dialect: str, column: Any) -> ColumnElement[int]:
    """A timestamp column as integer epoch seconds (computed by the database)."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.floor(extract("epoch", column)), BigInteger)
