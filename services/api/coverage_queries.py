"""The database side of coverage: read roll-ups (fast path) or recount raw rows (the
reference the tests and the benchmark compare against), duty and device-status
intervals, alerts opened; then hand plain numbers to `services.api.coverage`."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import Connection, bindparam, text

from services.api import coverage as cov
from services.core.db import UTCDateTime
from services.core.models.events import ROLLUP_COUNTERS

Source = Literal["rollup", "recount"]


def epoch_sql(dialect: str, column: str) -> str:
    """SQL for a timestamp column as integer epoch seconds (computed by the database)."""
    if dialect == "sqlite":
        return f"CAST(strftime('%s', {column}) AS INTEGER)"
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"


def _scope_sql(checkpoints: Sequence[str] | None, column: str = "checkpoint_id") -> str:
    return "" if checkpoints is None else f" AND {column} IN :cps"


def _params(
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


# --- counters per hour -----------------------------------------------------------------
_RECOUNT_PASSAGES = """
SELECT {hour} AS h, {group}
       COUNT(*),
       SUM(CASE WHEN kind = 'person' AND direction = 'in' THEN 1 ELSE 0 END),
       SUM(CASE WHEN kind = 'person' AND direction = 'out' THEN 1 ELSE 0 END),
       SUM(CASE WHEN kind = 'vehicle' AND direction = 'in' THEN 1 ELSE 0 END),
       SUM(CASE WHEN kind = 'vehicle' AND direction = 'out' THEN 1 ELSE 0 END),
       SUM(CASE WHEN kind = 'person' AND screened THEN 1 ELSE 0 END),
       SUM(CASE WHEN registration = 'registered' THEN 1 ELSE 0 END),
       SUM(CASE WHEN quarantined THEN 1 ELSE 0 END)
FROM passage WHERE ts >= :start AND ts < :end{scope}
GROUP BY h{group_by}
"""
_RECOUNT_READINGS = """
SELECT {hour} AS h, {group}
       COUNT(*),
       SUM(CASE WHEN fever THEN 1 ELSE 0 END),
       SUM(CASE WHEN implausible THEN 1 ELSE 0 END)
FROM reading WHERE ts >= :start AND ts < :end{scope}
GROUP BY h{group_by}
"""
_READING_COUNTERS = ("readings", "fevers", "implausible_readings")
# the order of the SELECTs above, which is that of the roll-up table
_PASSAGE_COUNTERS = tuple(c for c in ROLLUP_COUNTERS if c not in _READING_COUNTERS)


def recount_table(
    conn: Connection,
    start: datetime,
    end: datetime,
    checkpoints: Sequence[str] | None = None,
    per_checkpoint: bool = True,
) -> dict[tuple[str, int], dict[str, int]]:
    """Counters per (checkpoint, hour start epoch) recounted from passage and reading rows;
    the checkpoint is '' when `per_checkpoint` is false."""
    dialect = conn.dialect.name
    hour = f"({epoch_sql(dialect, 'ts')} / 3600) * 3600"
    group, group_by = ("checkpoint_id,", ", checkpoint_id") if per_checkpoint else ("", "")
    out: dict[tuple[str, int], dict[str, int]] = {}
    for sql, names in (
        (_RECOUNT_PASSAGES, _PASSAGE_COUNTERS),
        (_RECOUNT_READINGS, _READING_COUNTERS),
    ):
        statement, params = _params(
            sql.format(hour=hour, group=group, group_by=group_by, scope=_scope_sql(checkpoints)),
            start,
            end,
            checkpoints,
        )
        for row in conn.execute(statement, params):
            key = (row[1] if per_checkpoint else "", int(row[0]))
            values = row[2:] if per_checkpoint else row[1:]
            counters = out.setdefault(key, dict.fromkeys(ROLLUP_COUNTERS, 0))
            counters.update({n: int(v or 0) for n, v in zip(names, values, strict=True)})
    return out


def rollup_table(
    conn: Connection,
    start: datetime,
    end: datetime,
    checkpoints: Sequence[str] | None = None,
    per_checkpoint: bool = True,
) -> dict[tuple[str, int], dict[str, int]]:
    """The same shape as `recount_table`, read from `coverage_rollup`."""
    hour = epoch_sql(conn.dialect.name, "bucket")
    sums = ", ".join(f"SUM({c})" for c in ROLLUP_COUNTERS)
    if per_checkpoint:
        sql = f"SELECT {hour}, checkpoint_id, {sums} FROM coverage_rollup"
        group_by = " GROUP BY bucket, checkpoint_id"
    else:
        sql = f"SELECT {hour}, {sums} FROM coverage_rollup"
        group_by = " GROUP BY bucket"
    sql += " WHERE bucket >= :start AND bucket < :end" + _scope_sql(checkpoints) + group_by
    statement, params = _params(sql, start, end, checkpoints)
    out: dict[tuple[str, int], dict[str, int]] = {}
    for row in conn.execute(statement, params):
        key = (row[1] if per_checkpoint else "", int(row[0]))
        values = row[2:] if per_checkpoint else row[1:]
        counters = {n: int(v or 0) for n, v in zip(ROLLUP_COUNTERS, values, strict=True)}
        if any(counters.values()):
            out[key] = counters
    return out


# --- intervals -------------------------------------------------------------------------
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
            f"WHERE ts < :start{_scope_sql(cps)} ORDER BY {partition}, ts DESC, id DESC"
        )
    else:  # SQLite: a bare column next to max() comes from the row holding the max
        sql = (
            f"SELECT {columns}, MAX(ts) FROM {table} "
            f"WHERE ts < :start{_scope_sql(cps)} GROUP BY {partition}"
        )
    statement, params = _params(sql, start, start, cps)
    return list(conn.execute(statement, params))


def _events_within(
    conn: Connection, table: str, columns: str, start: datetime, end: datetime, cps: Any
) -> list[Any]:
    sql = (
        f"SELECT checkpoint_id, {epoch_sql(conn.dialect.name, 'ts')}, {columns} FROM {table} "
        f"WHERE ts >= :start AND ts < :end{_scope_sql(cps)} ORDER BY ts, id"
    )
    statement, params = _params(sql, start, end, cps)
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
        _hours(start, end),
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
        _hours(start, end),
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
    statement, params = _params(sql, start, end, _active(checkpoints))
    return tuple(int(v) for row in sorted(conn.execute(statement, params)) for v in row[1:])


def add_alerts_opened(
    conn: Connection, series: cov.HourSeries, start: datetime, end: datetime, cps: Any
) -> None:
    hour = f"({epoch_sql(conn.dialect.name, 'opened_at')} / 3600) * 3600"
    sql = (
        f"SELECT {hour} AS h, COUNT(*) FROM alert "
        f"WHERE opened_at >= :start AND opened_at < :end{_scope_sql(cps)} GROUP BY h"
    )
    statement, params = _params(sql, start, end, cps)
    for h, count in conn.execute(statement, params):
        series.alerts_opened[series.index(int(h))] += int(count)


# --- the report ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Scope:
    """What a report covers: `members` filters the counters (None: the whole community);
    `checkpoints` (active ones, with their min_staff) make up the checkpoint-minutes;
    `everyone` lists every checkpoint of the community when `members` is None."""

    checkpoints: dict[str, int]
    members: list[str] | None
    everyone: tuple[str, ...] = ()

    @property
    def filter(self) -> list[str] | None:
        return self.members

    @property
    def rollup_filter(self) -> list[str] | None:
        """`filter`, or every checkpoint by id for the whole community: the same roll-up
        rows (each belongs to a checkpoint, by foreign key), but the (checkpoint_id,
        bucket) key then serves the time range instead of a scan of all history."""
        if self.members is None and self.everyone:
            return list(self.everyone)
        return self.members


Held = tuple[cov.HeldTime, cov.HeldTime]  # staffed, online


class HeldMemory(Protocol):
    """May keep the staffed and online time of a window while no event changes it."""

    def held(
        self,
        conn: Connection,
        scope: Scope,
        start: datetime,
        end: datetime,
        until: int,
        compute: Callable[[], Held],
    ) -> Held: ...


def _hours(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds()) // cov.HOUR


def coverage_series(
    conn: Connection,
    scope: Scope,
    start: datetime,
    end: datetime,
    now: datetime,
    source: Source = "rollup",
    boundaries: Boundaries | None = None,
    held: HeldMemory | None = None,
) -> cov.HourSeries:
    """Every per-hour figure of the hour-aligned window [start, end). `boundaries` may
    remember the duty and device state at `start` when nothing can change it any more;
    `held` may remember the staffed and online time while no event changes it."""
    series = cov.HourSeries(start=cov.epoch(start), hours=_hours(start, end))
    if source == "rollup":
        table = rollup_table(conn, start, end, scope.rollup_filter, per_checkpoint=False)
    else:
        table = recount_table(conn, start, end, scope.filter, per_checkpoint=False)
    for (_cp, hour), counters in table.items():
        target = series.counters[series.index(hour)]
        for name, value in counters.items():
            target[name] += value
    until = min(cov.epoch(end), cov.epoch(now))
    cov.add_checkpoint_time(series, len(scope.checkpoints), until)
    if until > series.start and scope.checkpoints:

        def compute() -> Held:
            return (
                staffing_held(conn, start, end, until, scope.checkpoints, boundaries),
                uptime_held(conn, start, end, until, scope.checkpoints, boundaries),
            )

        staffed, online = (
            compute() if held is None else held.held(conn, scope, start, end, until, compute)
        )
        for per_hour, time in ((series.staffed_s, staffed), (series.online_s, online)):
            for k, seconds in enumerate(time.seconds(until)):
                per_hour[k] += seconds
    add_alerts_opened(conn, series, start, end, scope.filter)
    return series


def aligned_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    return cov.floor_hour(start), cov.ceil_hour(end)


def default_window(now: datetime) -> tuple[datetime, datetime]:
    end = cov.ceil_hour(now.astimezone(UTC))
    return end - timedelta(hours=24), end
