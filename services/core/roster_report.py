"""Roster figures read from the database: the requirements in force per checkpoint,
counted duty events, staffing timelines, hours served per person and role, and the
fever cases decided in a period. Used by the API, the alerts' roster timers and the
daily report; the counting itself is services/core/staffing.py.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from services.core.staffing import (
    CheckpointStaffing,
    DutyFact,
    Requirement,
    Segment,
    on_duty_intervals,
    timeline,
)
from services.core.tables import (
    checkpoint_t,
    duty_t,
    fever_case_t,
    requirement_t,
    staff_t,
)

# an `on` this long before the window still counts (longer than any shift)
DUTY_LOOKBACK = timedelta(hours=24)


def aware(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo("UTC"))


def load_requirements(conn: Connection) -> dict[str | None, list[Requirement]]:
    """Active requirements by checkpoint id; key None holds the defaults for all."""
    found: dict[str | None, list[Requirement]] = defaultdict(list)
    for row in conn.execute(
        select(requirement_t).where(requirement_t.c.active.is_(True)).order_by(requirement_t.c.id)
    ):
        found[row.checkpoint_id].append(
            Requirement(
                row.label, row.start_minute, row.end_minute, row.min_on_duty, tuple(row.roles or ())
            )
        )
    return dict(found)


def requirements_for(
    table: dict[str | None, list[Requirement]], checkpoint_id: str
) -> list[Requirement]:
    """A checkpoint's own requirements, else the defaults for all, else none."""
    return table.get(checkpoint_id) or table.get(None) or []


def staff_roles(conn: Connection) -> dict[str, str]:
    return {r.id: r.duty_role for r in conn.execute(select(staff_t.c.id, staff_t.c.duty_role))}


def duty_facts(
    conn: Connection, start: datetime, end: datetime, checkpoint_id: str | None = None
) -> list[DutyFact]:
    """Counted duty events from DUTY_LOOKBACK before `start` to `end`."""
    query = select(duty_t.c.checkpoint_id, duty_t.c.staff_id, duty_t.c.ts, duty_t.c.action).where(
        duty_t.c.unknown_staff.is_(False),
        duty_t.c.ts >= start - DUTY_LOOKBACK,
        duty_t.c.ts < end,
    )
    if checkpoint_id is not None:
        query = query.where(duty_t.c.checkpoint_id == checkpoint_id)
    return [
        DutyFact(r.checkpoint_id, r.staff_id, aware(r.ts), r.action == "on")
        for r in conn.execute(query)
    ]


Periods = dict[str, dict[str, list[tuple[datetime, datetime]]]]


def duty_periods(conn: Connection, start: datetime, end: datetime) -> Periods:
    """checkpoint -> staff -> periods on duty within [start, end) (counted events)."""
    periods = on_duty_intervals(duty_facts(conn, start, end), start - DUTY_LOOKBACK, end)
    by_cp: Periods = defaultdict(dict)
    for (cp_id, staff_id), spans in periods.items():
        clipped = [(max(a, start), b) for a, b in spans if b > start]
        if clipped:
            by_cp[cp_id][staff_id] = clipped
    return by_cp


def staffing_timelines(
    conn: Connection,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    periods: Periods | None = None,
) -> dict[str, list[Segment]]:
    """Every active checkpoint's staffing timeline over [start, end)."""
    reqs = load_requirements(conn)
    roles = staff_roles(conn)
    by_cp = periods if periods is not None else duty_periods(conn, start, end)
    out: dict[str, list[Segment]] = {}
    for row in conn.execute(
        select(checkpoint_t.c.id, checkpoint_t.c.min_staff).where(checkpoint_t.c.active.is_(True))
    ):
        cp = CheckpointStaffing(
            row.id, requirements_for(reqs, row.id), row.min_staff, by_cp.get(row.id, {})
        )
        out[row.id] = timeline(cp, roles, start, end, tz)
    return out


@dataclass(frozen=True, slots=True)
class HoursServed:
    staff_id: str
    name: str
    duty_role: str
    checkpoint_id: str
    minutes: float

    @property
    def hours(self) -> float:
        return round(self.minutes / 60, 2)


def hours_served(conn: Connection, start: datetime, end: datetime) -> list[HoursServed]:
    """Minutes on duty per staff member and checkpoint within [start, end) (an `on`
    still open counts to `end`; pass `end` = now for a day in progress)."""
    names = {r.id: (r.name, r.duty_role) for r in conn.execute(select(staff_t))}
    periods = on_duty_intervals(duty_facts(conn, start, end), start - DUTY_LOOKBACK, end)
    rows = []
    for (cp_id, staff_id), spans in sorted(periods.items()):
        minutes = sum(
            (min(b, end) - max(a, start)).total_seconds() / 60 for a, b in spans if b > start
        )
        if minutes <= 0:
            continue
        name, role = names.get(staff_id, ("", ""))
        rows.append(HoursServed(staff_id, name, role, cp_id, round(minutes, 2)))
    return rows


def hours_by_role(rows: list[HoursServed]) -> dict[str, float]:
    """Hours served per duty role (volunteers included), from `hours_served`."""
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row.duty_role] += row.minutes / 60
    return {role: round(h, 2) for role, h in sorted(totals.items())}


@dataclass(frozen=True, slots=True)
class FeverDispositionRow:
    alert_id: int
    checkpoint_id: str
    fever_at: datetime
    temp_c: float
    recheck_temp_c: float | None
    disposition: str | None
    decided_by: str | None
    decided_at: datetime | None

    @property
    def minutes_to_disposition(self) -> float | None:
        if self.decided_at is None:
            return None
        return round((self.decided_at - self.fever_at).total_seconds() / 60, 2)


def fever_dispositions(
    conn: Connection, start: datetime, end: datetime
) -> list[FeverDispositionRow]:
    """Fever cases opened in [start, end), decided or not, in time order."""
    query = (
        select(fever_case_t)
        .where(fever_case_t.c.fever_at >= start, fever_case_t.c.fever_at < end)
        .order_by(fever_case_t.c.fever_at, fever_case_t.c.alert_id)
    )
    return [
        FeverDispositionRow(
            r.alert_id,
            r.checkpoint_id,
            aware(r.fever_at),
            r.temp_c,
            r.recheck_temp_c,
            r.disposition,
            r.decided_by,
            aware(r.decided_at) if r.decided_at is not None else None,
        )
        for r in conn.execute(query)
    ]
