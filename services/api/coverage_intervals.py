"""Staffed and online time from the duty and device-status events (intervals between
changes, clipped to the window and to now), and the fingerprint that proves they did not
change since they were last computed."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection

from services.api import coverage as cov
from services.api.coverage_sql import bind_window, epoch_sql, scope_sql


class Boundaries(Protocol):
    """Remembers `_latest_before` answers at settled instants (nothing can change them)."""

    def latest_before(self, key: Hashable, compute: Callable[[], list[Any]]) -> list[Any]: ...


def _latest_before(
    conn: Connection,
    table: str,
    columns: str,
    partition: str,
    start: datetime,
    cps: Any,
    boundaries: Boundaries | None = None,
) -> list[Any]:
    """For each `partition` group, the columns of the last row before `start`."""
    if boundaries is not None:
        key = (table, columns, start, tuple(cps) if cps is not None else None)
        return boundaries.latest_before(
            key, lambda: _latest_before(conn, table, columns, partition, start, cps)
        )
    if conn.dialect.name == "postgresql":
        sql = (
            f"SELECT DISTINCT ON ({partition}) {columns} FROM {table} "
            f"WHERE ts < :start{scope_sql(cps)} ORDER BY {partition}, ts DESC, id DESC"
        )
    else:  # SQLite: a bare column next to max() comes from the row holding the max
        sql = (
            f"SELECT {columns}, MAX(ts) FROM {table} "
            f"WHERE ts < :start{scope_sql(cps)} GROUP BY {partition}"
        )
    statement, params = bind_window(sql, start, start, cps)
    return list(conn.execute(statement, params))


def _events_within(
    conn: Connection, table: str, columns: str, start: datetime, end: datetime, cps: Any
) -> list[Any]:
    sql = (
        f"SELECT checkpoint_id, {epoch_sql(conn.dialect.name, 'ts')}, {columns} FROM {table} "
        f"WHERE ts >= :start AND ts < :end{scope_sql(cps)} ORDER BY ts, id"
    )
    statement, params = bind_window(sql, start, end, cps)
    return list(conn.execute(statement, params))


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
) -> cov.HeldTime:
    """Time with at least min_staff on duty, summed over the checkpoints, up to `until`."""
    cps = _active(checkpoints)
    on_duty: dict[str, frozenset[str]] = defaultdict(frozenset)
    for cp, staff_id, action, *_ in _latest_before(
        conn,
        "duty_event",
        "checkpoint_id, staff_id, action",
        "checkpoint_id, staff_id",
        start,
        cps,
        boundaries,
    ):
        if action == "on":
            on_duty[cp] = on_duty[cp] | {staff_id}
    events: dict[str, list[tuple[int, tuple[str, str]]]] = defaultdict(list)
    for cp, ts, staff_id, action in _events_within(
        conn, "duty_event", "staff_id, action", start, end, cps
    ):
        events[cp].append((int(ts), (staff_id, action)))
    return cov.held_time(
        cov.epoch(start),
        cov.hours_between(start, end),
        until,
        (
            (on_duty[cp], events.get(cp, []), functools.partial(has_staff, min_staff))
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
) -> cov.HeldTime:
    """Time each device was online (per its status history), summed, up to `until`."""
    cps = _active(checkpoints)
    state: dict[str, str] = {}
    for cp, status, *_ in _latest_before(
        conn, "device_status_event", "checkpoint_id, state", "checkpoint_id", start, cps, boundaries
    ):
        state[cp] = status
    events: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for cp, ts, status in _events_within(conn, "device_status_event", "state", start, end, cps):
        events[cp].append((int(ts), status))
    return cov.held_time(
        cov.epoch(start),
        cov.hours_between(start, end),
        until,
        ((state.get(cp, "unknown"), events.get(cp, []), is_online) for cp in checkpoints),
        cov.apply_status,
    )


def event_fingerprint(
    conn: Connection, checkpoints: dict[str, int], start: datetime, end: datetime
) -> tuple[int, ...]:
    """Count and sum of ids of the duty and status events of the active checkpoints in
    [start, end). These rows are only ever inserted (retention deletes far older ones), so
    an unchanged fingerprint proves no event arrived, even one whose transaction took an
    id earlier but committed later (the count changes where a maximum id would not)."""
    sql = " UNION ALL ".join(
        f"SELECT {n}, COUNT(*), COALESCE(SUM(id), 0) FROM {table} "
        "WHERE ts >= :start AND ts < :end AND checkpoint_id IN :cps"
        for n, table in enumerate(("duty_event", "device_status_event"))
    )
    statement, params = bind_window(sql, start, end, _active(checkpoints))
    return tuple(int(v) for row in sorted(conn.execute(statement, params)) for v in row[1:])
