"""Watermarks: how far the alert worker has read a table, as a row per source with a
version. A pass reads its row locked, does its work and advances it with a
compare-and-set on the version, in the same transaction: a second worker that got there
first makes the update match no row, and the pass is rolled back (`WatermarkMoved`)
instead of raising the same alerts twice. The row lock serialises workers on
PostgreSQL; on SQLite the writers serialise anyway and the version check turns a lost
race into a rollback.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, func, select, update

from services.core.tables import dialect_insert, watermark_t

MAX_GAPS = 5000


class WatermarkMoved(RuntimeError):
    """Another worker processed this batch first; ours is rolled back."""


def ensure_watermarks(engine: Engine, names: Iterable[str]) -> None:
    with engine.begin() as conn:
        insert = dialect_insert(conn, watermark_t)
        for name in names:
            conn.execute(
                insert.values(
                    name=name, last_id=0, version=0, gaps=[], updated_at=func.now()
                ).on_conflict_do_nothing(index_elements=["name"])
            )


def read_watermark(conn: Connection, name: str) -> RowMapping | None:
    """The watermark row, locked until the transaction ends (PostgreSQL)."""
    return (
        conn.execute(select(watermark_t).where(watermark_t.c.name == name).with_for_update())
        .mappings()
        .first()
    )


def advance_watermark(
    conn: Connection, read: RowMapping, now: datetime, last_id: int, **values: Any
) -> None:
    """Move the watermark `read` earlier in this transaction; `WatermarkMoved` when
    another worker moved it in between (the caller's transaction must roll back)."""
    moved = conn.execute(
        update(watermark_t)
        .where(watermark_t.c.name == read["name"], watermark_t.c.version == read["version"])
        .values(last_id=last_id, version=read["version"] + 1, updated_at=now, **values)
    )
    if moved.rowcount != 1:
        raise WatermarkMoved(read["name"])


def next_watermark(
    last_id: int,
    seen: Iterable[int],
    gaps: list[list[Any]],
    found_gaps: set[int],
    now_s: float,
    expiry_s: float,
) -> tuple[int, list[list[Any]]]:
    """The new watermark and gap list after a batch (pure). `gaps` are [id, first_seen]."""
    ids = sorted(seen)
    kept = [g for g in gaps if g[0] not in found_gaps and now_s - g[1] < expiry_s]
    new_last = ids[-1] if ids else last_id
    expected = last_id + 1
    for row_id in ids:
        kept.extend([missing, now_s] for missing in range(expected, row_id))
        expected = row_id + 1
    return new_last, kept[-MAX_GAPS:]
