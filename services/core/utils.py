"""Small helpers shared by every service."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table


def table_of(model: Any) -> Table:
    """The Core table behind a SQLModel class (for set-based statements)."""
    table: Table = model.__table__
    return table
