"""The look-back plan and the same-day checks of resumed enterprises (pure)."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.core.supervision_plan import (
    ResumedEnterprise,
    local_day_bounds,
    lookback_plan,
    same_day_checks,
)

TZ = "Asia/Shanghai"
TEAMS = [f"team-{n}" for n in range(1, 6)]
SITES = [f"site-{n:02d}" for n in range(23)]


def local_date(dt: datetime) -> date:
    return dt.astimezone(ZoneInfo(TZ)).date()


@pytest.mark.parametrize("days", [1, 3, 7])
def test_every_site_within_n_days_fair_and_in_working_hours(days: int) -> None:
    start = date(2020, 2, 21)
    plan = lookback_plan(SITES, TEAMS, start, days, TZ, seed=4)
    assert sorted(v.site_id for v in plan) == sorted(SITES)
    for v in plan:
        assert start <= local_date(v.planned_at) < start + timedelta(days=days)
        assert v.planned_at < v.due_by
        assert 8 <= v.planned_at.astimezone(ZoneInfo(TZ)).hour < 20
    counts = Counter(v.team_id for v in plan)
    assert set(counts) <= set(TEAMS)
    assert max(counts.values()) - min(counts.get(t, 0) for t in TEAMS) <= 1


def test_last_visit_brings_the_next_one_forward() -> None:
    start = date(2020, 3, 1)
    last = {"site-00": start - timedelta(days=6), "site-01": start - timedelta(days=30)}
    for seed in range(20):
        plan = {v.site_id: v for v in lookback_plan(SITES, TEAMS, start, 7, TZ, seed, last)}
        assert local_date(plan["site-00"].planned_at) <= start + timedelta(days=1)
        assert local_date(plan["site-01"].planned_at) == start  # overdue: today


def test_plans_are_random_but_replayable() -> None:
    start = date(2020, 2, 21)
    a = lookback_plan(SITES, TEAMS, start, 7, TZ, seed=1)
    assert a == lookback_plan(SITES, TEAMS, start, 7, TZ, seed=1)
    b = lookback_plan(SITES, TEAMS, start, 7, TZ, seed=2)
    assert [v.site_id for v in a] != [v.site_id for v in b]
    with pytest.raises(ValueError, match="no supervision team"):
        lookback_plan(SITES, [], start, 7, TZ, seed=1)


def test_same_day_checks_fall_on_the_day_of_resumption() -> None:
    day = date(2020, 2, 24)
    start, end = local_day_bounds(day, TZ)
    now = start.astimezone(UTC) + timedelta(hours=15)
    resumed = [ResumedEnterprise(i, "park-1", day) for i in range(12)]
    checks = same_day_checks(resumed, TEAMS, {"team-1": 3}, now, TZ, seed=9)
    assert [c.enterprise_id for c in checks] == list(range(12))
    for c in checks:
        assert now <= c.planned_at < end and c.due_by == end
    counts = Counter(c.team_id for c in checks)
    assert counts["team-1"] <= 2  # already had 3 visits: gets the fewest new ones
    late = same_day_checks(resumed[:1], TEAMS, {}, end + timedelta(hours=1), TZ, seed=9)
    assert late[0].planned_at < late[0].due_by == end
