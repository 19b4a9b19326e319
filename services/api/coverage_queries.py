"""The database side of coverage: read roll-ups (fast path) or recount raw rows (the
reference the tests and the benchmark compare against), add the staffed and online time
(coverage_intervals.py) and alerts opened; then hand plain numbers to
`services.api.coverage`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import Connection

from services.api import coverage as cov
from services.api.coverage_intervals import Boundaries, staffing_held, uptime_held
from services.api.coverage_sql import bind_window, epoch_sql, scope_sql
from services.core.models.events import ROLLUP_COUNTERS

Source = Literal["rollup", "recount"]


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
        statement, params = bind_window(
            sql.format(hour=hour, group=group, group_by=group_by, scope=scope_sql(checkpoints)),
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
    sql += " WHERE bucket >= :start AND bucket < :end" + scope_sql(checkpoints) + group_by
    statement, params = bind_window(sql, start, end, checkpoints)
    out: dict[tuple[str, int], dict[str, int]] = {}
    for row in conn.execute(statement, params):
        key = (row[1] if per_checkpoint else "", int(row[0]))
        values = row[2:] if per_checkpoint else row[1:]
        counters = {n: int(v or 0) for n, v in zip(ROLLUP_COUNTERS, values, strict=True)}
        if any(counters.values()):
            out[key] = counters
    return out


def add_alerts_opened(
    conn: Connection, series: cov.HourSeries, start: datetime, end: datetime, cps: Any
) -> None:
    hour = f"({epoch_sql(conn.dialect.name, 'opened_at')} / 3600) * 3600"
    sql = (
        f"SELECT {hour} AS h, COUNT(*) FROM alert "
        f"WHERE opened_at >= :start AND opened_at < :end{scope_sql(cps)} GROUP BY h"
    )
    statement, params = bind_window(sql, start, end, cps)
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
    series = cov.HourSeries(start=cov.epoch(start), hours=cov.hours_between(start, end))
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
