"""CSV import of rosters and of the checkpoints staff may serve, through the registry
import's machinery (registry_import.py: line-numbered errors, both modes, the audit
record). `rosters`: checkpoint_id,staff_id,starts_at,ends_at[,label] with times that
carry their offset (2026-03-01T23:00:00+08:00); `staff_checkpoints`:
staff_id,checkpoint_id. A staff member listed for some checkpoints may only be
rostered there; one with none listed may serve anywhere.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy import select

from services.core.models.registry import SLUG
from services.core.models.roster import RosterShift, StaffCheckpoint
from services.core.registry_import import (
    CHECKS,
    ENTITIES,
    Entity,
    RowProblem,
    _Context,
    _ref,
)
from services.core.tables import checkpoint_t, roster_t, staff_checkpoint_t, staff_t

MAX_SHIFT = timedelta(hours=24)


class RosterRow(BaseModel):
    checkpoint_id: str = Field(max_length=64, pattern=SLUG)
    staff_id: str = Field(max_length=64, pattern=SLUG)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    label: str = Field(default="", max_length=20)


class StaffCheckpointRow(BaseModel):
    staff_id: str = Field(max_length=64, pattern=SLUG)
    checkpoint_id: str = Field(max_length=64, pattern=SLUG)


def _stored(ctx: _Context, name: str, *columns: Any) -> set[Any]:
    """Composite keys already stored (and, as rows are checked, seen in the file)."""
    cache: dict[str, set[Any]] = ctx._cache
    if name not in cache:
        cache[name] = {tuple(r) for r in ctx.conn.execute(select(*columns))}
    return cache[name]


def _may_serve(ctx: _Context) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for staff_id, cp_id in ctx.conn.execute(select(staff_checkpoint_t)):
        found.setdefault(staff_id, set()).add(cp_id)
    return found


def _roster_row(ctx: _Context, row: BaseModel) -> dict[str, Any]:
    assert isinstance(row, RosterRow)
    _ref(ctx, "checkpoint", checkpoint_t.c.id, row.checkpoint_id, "checkpoint_id", "checkpoint")
    _ref(ctx, "staff", staff_t.c.id, row.staff_id, "staff_id", "staff member")
    if not row.starts_at < row.ends_at <= row.starts_at + MAX_SHIFT:
        raise RowProblem("ends_at", "a shift ends after it starts, within 24 hours")
    allowed = _may_serve(ctx).get(row.staff_id)
    if allowed is not None and row.checkpoint_id not in allowed:
        raise RowProblem("checkpoint_id", f"{row.staff_id} may not serve {row.checkpoint_id}")
    seen = _stored(
        ctx, "roster_shift", roster_t.c.checkpoint_id, roster_t.c.staff_id, roster_t.c.starts_at
    )
    key = (row.checkpoint_id, row.staff_id, row.starts_at)
    if any(k[:2] == key[:2] and k[2] == key[2] for k in seen):
        raise RowProblem("starts_at", "this person is already rostered here at this time")
    seen.add(key)
    return row.model_dump()


def _staff_checkpoint_row(ctx: _Context, row: BaseModel) -> dict[str, Any]:
    assert isinstance(row, StaffCheckpointRow)
    _ref(ctx, "checkpoint", checkpoint_t.c.id, row.checkpoint_id, "checkpoint_id", "checkpoint")
    _ref(ctx, "staff", staff_t.c.id, row.staff_id, "staff_id", "staff member")
    pairs = _stored(
        ctx, "staff_checkpoint", staff_checkpoint_t.c.staff_id, staff_checkpoint_t.c.checkpoint_id
    )
    if (row.staff_id, row.checkpoint_id) in pairs:
        raise RowProblem("checkpoint_id", "already listed")
    pairs.add((row.staff_id, row.checkpoint_id))
    return row.model_dump()


def register() -> None:
    """Make the two entities importable (idempotent; runs when this module loads)."""
    ENTITIES["rosters"] = Entity(
        RosterRow, RosterShift, ("checkpoint_id", "staff_id", "starts_at", "ends_at")
    )
    ENTITIES["staff_checkpoints"] = Entity(
        StaffCheckpointRow, StaffCheckpoint, ("staff_id", "checkpoint_id")
    )
    CHECKS["rosters"] = _roster_row
    CHECKS["staff_checkpoints"] = _staff_checkpoint_row


register()
