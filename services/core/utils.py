"""Small helpers shared by every service."""

from __future__ import annotations

import gc
from typing import Any

from sqlalchemy import Table


def table_of(model: Any) -> Table:
    """The Core table behind a SQLModel class (for set-based statements)."""
    table: Table = model.__table__
    return table


def freeze_startup_objects() -> None:
    """Take what a long-lived service created at start-up (modules, models, schemas) out
    of the garbage collector's full scans, which otherwise pause it now and then for
    ~100 ms (see docs/benchmarks.md). Call once, after start-up."""
    gc.collect()
    gc.freeze()
