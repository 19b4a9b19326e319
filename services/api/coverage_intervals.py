"""Staffed and online time from the duty and device-status events (intervals between
changes, clipped to the window and to now), and the fingerprint that proves they did not
change since they were last computed."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Table, func, literal, select, union_all
from sqlalchemy.dialects.postgresql import distinct_on

from services.api import coverage as cov
from services.api.coverage_sql import epoch_seconds
from services.core.tables import duty_t, status_t


class Boundaries(Protocol):
    """Remembers `_latest_before` answers at settled instants (nothing can change them)."""

    def latest_before(self, key: Hashable, compute: Callable[[], list[Any]]) -> list[Any]: ...


def _latest_before(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    partition: tuple[str, ...],
    start: datetime,
    cps: Any,
    boundaries: Boundaries | None = None,
) -> list[Any]:
    """For each `partition` group, the columns of the last row before `start`."""
    if boundaries is not None:
        key = (table.name, columns, start, tuple(cps) if cps is not None else None)
        return boundaries.latest_before(
            key, lambda: _latest_before(conn, table, columns, partition, start, cps)
        )
    selected = [table.c[name] for name in columns]
    groups = [table.c[name] for name in partition]
    if conn.dialect.name == "postgresql":
        query = (
            select(*selected)
            .ext(distinct_on(*groups))
            .order_by(*groups, table.c.ts.desc(), table.c.id.desc())
        )
    else:  # SQLite: a bare column next to max() comes from the row holding the max
        query = select(*selected, func.max(table.c.ts)).group_by(*groups)
    query = query.where(table.c.ts < start)
    if cps is not None:
        query = query.where(table.c.checkpoint_id.in_(list(cps)))
    return list(conn.execute(query))


def _events_within(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    start: datetime,
    end: datetime,
    cps: Any,
) -> list[Any]:
    query = select(
        table.c.checkpoint_id,
        epoch_seconds(conn.dialect.name, table.c.ts),
        *(table.c[name] for name in columns),
    ).where(table.c.ts >= start, table.c.ts < end)
    if cps is not None:
        query = query.where(table.c.checkpoint_id.in_(list(cps)))
    return list(conn.execute(query.order_by(table.c.ts, table.c.id)))


def _active(checkpoints: dict[str, int]) -> list[str]:
    # only active checkpoints make minutes: their events alone are read, which also lets
    # the (checkpoint_id, ts) indexes serve the time range
    return sorted(checkpoints)


def staffing_held(
    conn: Connection,
    start: datetime,
    end: datetime,
    until: int,
    checkpoints: dict[str, int],
    boundaries: Boundaries | None = None,
    periods: Mapping[str, cov.Period] | None = None,
) -> cov.HeldTime:
    """Time with at least min_staff on duty, summed over the checkpoints, up to `until`."""
    cps = _active(checkpoints)
    on_duty: dict[str, frozenset[str]] = defaultdict(frozenset)
    for cp, staff_id, action, *_ in _latest_before(
        conn,
        duty_t,
        ("checkpoint_id", "staff_id", "action"),
        ("checkpoint_id", "staff_id"),
        start,
        cps,
        boundaries,
    ):
        if action == "on":
            on_duty[cp] = on_duty[cp] | {staff_id}
    events: dict[str, list[tuple[int, tuple[str, str]]]] = defaultdict(list)
    for cp, ts, staff_id, action in _events_within(
        conn, duty_t, ("staff_id", "action"), start, end, cps
    ):
        events[cp].append((int(ts), (staff_id, action)))
    return cov.held_time(
        cov.epoch(start),
        cov.hours_between(start, end),
        until,
        (
            (
                on_duty[cp],
                events.get(cp, []),
                functools.partial(has_staff, min_staff),
                (periods or {}).get(cp, cov.ALWAYS),
            )
            for cp, min_staff in checkpoints.items()
        ),
        cov.apply_duty,
    )


def has_staff(need: int, on_duty: frozenset[str]) -> bool:
    return len(on_duty) >= need


def is_online(state: str) -> bool:
    return state == "online"


def uptime_held(
    conn: Connection,
    start: datetime,
    end: datetime,
    until: int,
    checkpoints: dict[str, int],
    boundaries: Boundaries | None = None,
    periods: Mapping[str, cov.Period] | None = None,
) -> cov.HeldTime:
    """Time each device was online (per its status history), summed, up to `until`."""
    cps = _active(checkpoints)
    state: dict[str, str] = {}
    for cp, status, *_ in _latest_before(
        conn, status_t, ("checkpoint_id", "state"), ("checkpoint_id",), start, cps, boundaries
    ):
        state[cp] = status
    events: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for cp, ts, status in _events_within(conn, status_t, ("state",), start, end, cps):
        events[cp].append((int(ts), status))
    return cov.held_time(
        cov.epoch(start),
        cov.hours_between(start, end),
        until,
        (
            (
                state.get(cp, "unknown"),
                events.get(cp, []),
                is_online,
                (periods or {}).get(cp, cov.ALWAYS),
            )
            for cp in checkpoints
        ),
        cov.apply_status,
    )


def event_fingerprint(
    conn: Connection, checkpoints: dict[str, int], start: datetime, end: datetime
) -> tuple[int, ...]:
    """Count and sum of ids of the duty and status events of the active checkpoints in
    [start, end). These rows are only ever inserted (retention deletes far older ones), so
    an unchanged fingerprint proves no event arrived, even one whose transaction took an
    id earlier but committed later (the count changes where a maximum id would not)."""
    cps = _active(checkpoints)
    query = union_all(
        *(
            select(literal(n), func.count(), func.coalesce(func.sum(table.c.id), 0)).where(
                table.c.ts >= start, table.c.ts < end, table.c.checkpoint_id.in_(cps)
            )
            for n, table in enumerate((duty_t, status_t))
        )
    )
    return tuple(int(v) for row in sorted(conn.execute(query)) for v in row[1:])
