"""Pure planning: unannounced look-back visits and same-day checks of resumed enterprises.

Look-back: every residential compound and industrial park is visited at least once in
`days` days, counted from its last visit; the day and the time of day are drawn at
random (seeded, so a test can replay a plan), and the visits are shared out so that no
team has more than one visit more than another, day by day. Resumed enterprises are
checked the same local day by the team with the fewest visits that day.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_OPENS = time(8, 0)  # visits happen in working hours, local time
DAY_CLOSES = time(20, 0)


@dataclass(frozen=True, slots=True)
class PlannedVisit:
    team_id: str
    site_id: str
    planned_at: datetime  # UTC
    due_by: datetime  # UTC: the latest the visit keeps the N-day promise
    enterprise_id: int | None = None


def local_day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a local day, as aware datetimes in that zone."""
    tz = ZoneInfo(timezone)
    start = datetime.combine(day, time(0), tz)
    return start, datetime.combine(day + timedelta(days=1), time(0), tz)


def random_time_on(day: date, timezone: str, rng: random.Random) -> datetime:
    minutes = rng.randrange(
        DAY_OPENS.hour * 60 + DAY_OPENS.minute, DAY_CLOSES.hour * 60 + DAY_CLOSES.minute
    )
    local = datetime.combine(day, time(minutes // 60, minutes % 60), ZoneInfo(timezone))
    return local.astimezone(ZoneInfo("UTC"))


def _least_loaded(teams: Sequence[str], load: Mapping[str, int], rng: random.Random) -> str:
    fewest = min(load[t] for t in teams)
    return rng.choice([t for t in teams if load[t] == fewest])


def lookback_plan(
    site_ids: Sequence[str],
    team_ids: Sequence[str],
    start: date,
    days: int,
    timezone: str,
    seed: int,
    last_visited: Mapping[str, date] | None = None,
) -> list[PlannedVisit]:
    """One visit per site within the `days` local days from `start`, each on or before
    the day its last visit (if any) was `days` days ago. Sorted by time."""
    if not team_ids:
        raise ValueError("no supervision team to plan for")
    if days < 1:
        raise ValueError("days must be at least 1")
    last = last_visited or {}
    rng = random.Random(seed)
    order = sorted(site_ids)
    rng.shuffle(order)  # unannounced: no fixed round
    by_day: dict[int, list[str]] = {}
    latest_of: dict[str, int] = {}
    for site in order:
        latest = days - 1
        if site in last:
            latest = min(latest, (last[site] - start).days + days)
        latest = max(latest, 0)  # overdue already: today
        latest_of[site] = latest
        by_day.setdefault(rng.randint(0, latest), []).append(site)
    load = dict.fromkeys(team_ids, 0)
    visits: list[PlannedVisit] = []
    for offset in sorted(by_day):
        day = start + timedelta(days=offset)
        for site in by_day[offset]:
            team = _least_loaded(team_ids, load, rng)
            load[team] += 1
            due_day = start + timedelta(days=latest_of[site])
            visits.append(
                PlannedVisit(
                    team_id=team,
                    site_id=site,
                    planned_at=random_time_on(day, timezone, rng),
                    due_by=local_day_bounds(due_day, timezone)[1].astimezone(ZoneInfo("UTC")),
                )
            )
    return sorted(visits, key=lambda v: (v.planned_at, v.site_id))


@dataclass(frozen=True, slots=True)
class ResumedEnterprise:
    enterprise_id: int
    site_id: str
    resumed_on: date


def same_day_checks(
    enterprises: Sequence[ResumedEnterprise],
    team_ids: Sequence[str],
    load_today: Mapping[str, int],
    now: datetime,
    timezone: str,
    seed: int,
) -> list[PlannedVisit]:
    """A check for each resumed enterprise on its day of resumption: planned between now
    and the end of that local day, to the least-loaded team; due by the end of the day."""
    if not team_ids:
        raise ValueError("no supervision team to plan for")
    rng = random.Random(seed)
    load = {t: load_today.get(t, 0) for t in team_ids}
    out: list[PlannedVisit] = []
    for e in sorted(enterprises, key=lambda e: e.enterprise_id):
        day_start, day_end = local_day_bounds(e.resumed_on, timezone)
        earliest = max(now, day_start)
        if earliest >= day_end:
            earliest = day_end - timedelta(minutes=1)  # late report: still due today
        span = int((day_end - earliest).total_seconds() // 60)
        planned = earliest + timedelta(minutes=rng.randrange(max(span // 2, 1)))
        team = _least_loaded(team_ids, load, rng)
        load[team] += 1
        out.append(
            PlannedVisit(
                team_id=team,
                site_id=e.site_id,
                planned_at=planned.astimezone(ZoneInfo("UTC")),
                due_by=day_end.astimezone(ZoneInfo("UTC")),
                enterprise_id=e.enterprise_id,
            )
        )
    return out
