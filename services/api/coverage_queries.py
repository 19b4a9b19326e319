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


def add_staffing(
    conn: Connection,
    series: cov.HourSeries,
    start: datetime,
    end: datetime,
    until: int,
    checkpoints: dict[str, int],
    cps: Sequence[str] | None,
    boundaries: Boundaries | None = None,
) -> None:
    """Seconds per hour with at least min_staff on duty, summed over the checkpoints."""
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
    adder = cov.SegmentAdder(series.start, series.hours)
    for cp, min_staff in checkpoints.items():
        cov.time_where(
            adder,
            series.start,
            until,
            on_duty[cp],
            events.get(cp, ()),
            cov.apply_duty,
            functools.partial(has_staff, min_staff),
        )
    adder.into(series.staffed_s)


def has_staff(need: int, on_duty: frozenset[str]) -> bool:
    return len(on_duty) >= need


def is_online(state: str) -> bool:
    return state == "online"


def add_uptime(
    conn: Connection,
    series: cov.HourSeries,
    start: datetime,
    end: datetime,
    until: int,
    checkpoints: dict[str, int],
    cps: Sequence[str] | None,
    boundaries: Boundaries | None = None,
) -> None:
    """Seconds per hour each device was online (per its status history)."""
    state: dict[str, str] = {}
    for cp, status, *_ in _latest_before(
        conn, "device_status_event", "checkpoint_id, state", "checkpoint_id", start, cps, boundaries
    ):
        state[cp] = status
    events: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for cp, ts, status in _events_within(conn, "device_status_event", "state", start, end, cps):
        events[cp].append((int(ts), status))
    adder = cov.SegmentAdder(series.start, series.hours)
    for cp in checkpoints:
        cov.time_where(
            adder,
            series.start,
            until,
            state.get(cp, "unknown"),
            events.get(cp, ()),
            cov.apply_status,
            is_online,
        )
    adder.into(series.online_s)


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
    `checkpoints` (active ones, with their min_staff) make up the checkpoint-minutes."""

    checkpoints: dict[str, int]
    members: list[str] | None

    @property
    def filter(self) -> list[str] | None:
        return self.members


def coverage_series(
    conn: Connection,
    scope: Scope,
    start: datetime,
    end: datetime,
    now: datetime,
    source: Source = "rollup",
    boundaries: Boundaries | None = None,
) -> cov.HourSeries:
    """Every per-hour figure of the hour-aligned window [start, end). `boundaries` may
    remember the duty and device state at `start` when nothing can change it any more."""
    hours = int((end - start).total_seconds()) // cov.HOUR
    series = cov.HourSeries(start=cov.epoch(start), hours=hours)
    cps = scope.filter
    read = rollup_table if source == "rollup" else recount_table
    for (_cp, hour), counters in read(conn, start, end, cps, per_checkpoint=False).items():
        target = series.counters[series.index(hour)]
        for name, value in counters.items():
            target[name] += value
    until = min(cov.epoch(end), cov.epoch(now))
    cov.add_checkpoint_time(series, len(scope.checkpoints), until)
    if until > series.start and scope.checkpoints:
        add_staffing(conn, series, start, end, until, scope.checkpoints, cps, boundaries)
        add_uptime(conn, series, start, end, until, scope.checkpoints, cps, boundaries)
    add_alerts_opened(conn, series, start, end, cps)
    return series


def aligned_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    return cov.floor_hour(start), cov.ceil_hour(end)


def default_window(now: datetime) -> tuple[datetime, datetime]:
    end = cov.ceil_hour(now.astimezone(UTC))
    return end - timedelta(hours=24), end
