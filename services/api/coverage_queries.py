"""The database side of coverage: read roll-ups (fast path) or recount raw rows (the
reference the tests and the benchmark compare against), add the staffed and online time
(coverage_intervals.py) and alerts opened; then hand plain numbers to
`services.api.coverage`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Table,
    and_,
    case,
    func,
    literal_column,
    select,
)

from services.api import coverage as cov
from services.api.coverage_intervals import Boundaries, staffing_held, uptime_held
from services.api.coverage_sql import epoch_seconds
from services.core.models.events import ROLLUP_COUNTERS
from services.core.tables import alert_t, passage_t, reading_t, rollup_t

Source = Literal["rollup", "recount"]


# --- counters per hour -----------------------------------------------------------------
_READING_COUNTERS = ("readings", "fevers", "implausible_readings")
# the order of the recount's passage sums below, which is that of the roll-up table
_PASSAGE_COUNTERS = tuple(c for c in ROLLUP_COUNTERS if c not in _READING_COUNTERS)
HOUR_S = 3600


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


def _hour_of(dialect: str, column: Any) -> ColumnElement[Any]:
    """The hour's start as epoch seconds, labelled `h` for GROUP BY (the hour as a
    literal, not a parameter: PostgreSQL must see the same expression in both places)."""
    hour = literal_column(str(HOUR_S), Integer)
    return ((epoch_seconds(dialect, column) // hour) * hour).label("h")


def _recount_sums(table: Table) -> list[ColumnElement[int]]:
    if table is reading_t:
        return [
            func.count(),
            _count_if(reading_t.c.fever.is_(True)),
            _count_if(reading_t.c.implausible.is_(True)),
        ]
    person, vehicle = passage_t.c.kind == "person", passage_t.c.kind == "vehicle"
    inward, outward = passage_t.c.direction == "in", passage_t.c.direction == "out"
    return [
        func.count(),
        _count_if(and_(person, inward)),
        _count_if(and_(person, outward)),
        _count_if(and_(vehicle, inward)),
        _count_if(and_(vehicle, outward)),
        _count_if(and_(person, passage_t.c.screened.is_(True))),
        _count_if(passage_t.c.registration == "registered"),
        _count_if(passage_t.c.quarantined.is_(True)),
    ]


def _windowed(
    query: Any, column: Any, start: datetime, end: datetime, checkpoints: Any, table: Table
) -> Any:
    query = query.where(column >= start, column < end)
    if checkpoints is not None:
        query = query.where(table.c.checkpoint_id.in_(list(checkpoints)))
    return query


def recount_table(
    conn: Connection,
    start: datetime,
    end: datetime,
    checkpoints: Sequence[str] | None = None,
    per_checkpoint: bool = True,
) -> dict[tuple[str, int], dict[str, int]]:
    """Counters per (checkpoint, hour start epoch) recounted from passage and reading rows;
    the checkpoint is '' when `per_checkpoint` is false."""
    out: dict[tuple[str, int], dict[str, int]] = {}
    for table, names in ((passage_t, _PASSAGE_COUNTERS), (reading_t, _READING_COUNTERS)):
        hour = _hour_of(conn.dialect.name, table.c.ts)
        group = [table.c.checkpoint_id] if per_checkpoint else []
        query = _windowed(
            select(hour, *group, *_recount_sums(table)),
            table.c.ts,
            start,
            end,
            checkpoints,
            table,
        ).group_by(literal_column("h"), *group)
        for row in conn.execute(query):
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
    hour = epoch_seconds(conn.dialect.name, rollup_t.c.bucket)
    sums = [func.sum(rollup_t.c[c]) for c in ROLLUP_COUNTERS]
    group = [rollup_t.c.checkpoint_id] if per_checkpoint else []
    query = _windowed(
        select(hour, *group, *sums), rollup_t.c.bucket, start, end, checkpoints, rollup_t
    ).group_by(rollup_t.c.bucket, *group)
    out: dict[tuple[str, int], dict[str, int]] = {}
    for row in conn.execute(query):
        key = (row[1] if per_checkpoint else "", int(row[0]))
        values = row[2:] if per_checkpoint else row[1:]
        counters = {n: int(v or 0) for n, v in zip(ROLLUP_COUNTERS, values, strict=True)}
        if any(counters.values()):
            out[key] = counters
    return out


def add_alerts_opened(
    conn: Connection, series: cov.HourSeries, start: datetime, end: datetime, cps: Any
) -> None:
    hour = _hour_of(conn.dialect.name, alert_t.c.opened_at)
    query = _windowed(
        select(hour, func.count()), alert_t.c.opened_at, start, end, cps, alert_t
    ).group_by(literal_column("h"))
    for h, count in conn.execute(query):
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
    # each checkpoint's in-service period (epoch seconds); absent: always in service
    service: dict[str, cov.Period] = field(default_factory=dict)

    def period(self, checkpoint_id: str) -> cov.Period:
        return self.service.get(checkpoint_id, cov.ALWAYS)

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
    cov.add_checkpoint_time(series, map(scope.period, scope.checkpoints), until)
    if until > series.start and scope.checkpoints:

        def compute() -> Held:
            return (
                staffing_held(
                    conn, start, end, until, scope.checkpoints, boundaries, scope.service
                ),
                uptime_held(conn, start, end, until, scope.checkpoints, boundaries, scope.service),
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
