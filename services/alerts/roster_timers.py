"""The roster rules' reads, for the timed processor: current shifts, duty periods and
staffing timelines, turned into findings by roster_rules.py. Checkpoints governed by
requirements (their own, or the defaults for all) get the requirement-aware
`staffing_gap` instead of the plain `min_staff` one from timed_rules.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from services.alerts.event_rules import AlertType, Finding
from services.alerts.roster_rules import (
    RosterThresholds,
    ShiftFact,
    roster_conditions,
    staffing_gap,
)
from services.alerts.timed_rules import Thresholds
from services.core.roster_report import (
    aware,
    duty_periods,
    load_requirements,
    staff_roles,
    staffing_timelines,
)
from services.core.tables import checkpoint_t, roster_t

# how far back a timeline is built: longer than any gap worth its start time
TIMELINE_SPAN = timedelta(hours=12)
INSTANT = timedelta(seconds=1)


def current_shifts(
    conn: Connection, now: datetime
) -> list[tuple[str, str, str, datetime, datetime]]:
    """(checkpoint, site, staff, starts_at, ends_at) of every shift covering now."""
    rows = conn.execute(
        select(
            roster_t.c.checkpoint_id,
            checkpoint_t.c.site_id,
            roster_t.c.staff_id,
            roster_t.c.starts_at,
            roster_t.c.ends_at,
        )
        .join(checkpoint_t, checkpoint_t.c.id == roster_t.c.checkpoint_id)
        .where(
            roster_t.c.starts_at <= now,
            roster_t.c.ends_at > now,
            checkpoint_t.c.active.is_(True),
        )
    ).all()
    return [(r[0], r[1], r[2], aware(r[3]), aware(r[4])) for r in rows]


def with_roster(
    conn: Connection, now: datetime, t: Thresholds, holding: list[Finding]
) -> list[Finding]:
    """`holding` (timed_rules' conditions) with the roster's: the requirement-aware
    staffing gap replaces the plain one where requirements govern, and no-shows and
    early departures of the current shifts are added."""
    reqs = load_requirements(conn)
    shifts = current_shifts(conn, now)
    if not reqs and not shifts:
        return holding
    rt = RosterThresholds(t.staffing_grace, t.no_show_after, t.left_post_grace)
    start = now - TIMELINE_SPAN
    # judged at `now` itself: a rule that ends (or begins) now already counts
    until = now + INSTANT
    periods = duty_periods(conn, start, until)
    sites = {
        r.id: r.site_id for r in conn.execute(select(checkpoint_t.c.id, checkpoint_t.c.site_id))
    }
    found: list[Finding] = []
    governed: set[str] = set()
    if reqs:
        rostered = {s[0] for s in shifts}
        timelines = staffing_timelines(conn, start, until, ZoneInfo(t.timezone), periods)
        for cp_id, segments in timelines.items():
            if None not in reqs and cp_id not in reqs:
                continue
            governed.add(cp_id)
            if cp_id not in periods and cp_id not in rostered:
                continue  # staffing not reported here at all
            gap = staffing_gap(cp_id, sites[cp_id], segments, now, rt)
            if gap is not None:
                found.append(gap)
    if shifts:
        roles = staff_roles(conn)
        facts = [
            ShiftFact(
                cp_id,
                site_id,
                staff_id,
                roles.get(staff_id, ""),
                starts_at,
                ends_at,
                tuple(periods.get(cp_id, {}).get(staff_id, ())),
            )
            for cp_id, site_id, staff_id, starts_at, ends_at in shifts
        ]
        on_duty_now = {
            cp_id: sum(any(b >= now for _, b in spans) for spans in staff.values())
            for cp_id, staff in periods.items()
        }
        found += roster_conditions(facts, on_duty_now, now, rt)
    kept = [
        f for f in holding if not (f.type == AlertType.STAFFING_GAP and f.checkpoint_id in governed)
    ]
    return kept + found
