"""The roster rules in the timed processor, on both databases: the night role mix,
no-shows and early departures, each opening and ending exactly when it should."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, update

from services.alerts.timed_processor import Timers
from services.alerts.timed_rules import Thresholds
from services.core.staffing import DEFAULT_REQUIREMENTS
from services.core.tables import duty_t, requirement_t, roster_t, staff_t
from tests.support.alerts import Clock, alerts

# 23:00 local (Asia/Shanghai) on 2026-03-01 is 15:00 UTC: the night rule begins
NIGHT = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
M = timedelta(minutes=1)
ROLES = {"st-001-1": "police", "st-001-2": "medical", "st-001-3": "community"}
_msg = itertools.count(1)


def install_defaults(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(requirement_t),
            [
                {
                    "checkpoint_id": None,
                    "label": r.label,
                    "start_minute": r.start_minute,
                    "end_minute": r.end_minute,
                    "min_on_duty": r.min_on_duty,
                    "roles": list(r.roles),
                    "active": True,
                }
                for r in DEFAULT_REQUIREMENTS
            ],
        )
        for staff_id, role in {**ROLES, "st-001-4": "volunteer"}.items():
            conn.execute(update(staff_t).where(staff_t.c.id == staff_id).values(duty_role=role))
        conn.execute(
            insert(roster_t),
            [
                {
                    "checkpoint_id": "cp-001",
                    "staff_id": s,
                    "starts_at": NIGHT,
                    "ends_at": NIGHT + 8 * 60 * M,
                    "label": "night",
                }
                for s in ROLES
            ],
        )


def duty(engine: Engine, staff: str, action: str, at: datetime, unknown: bool = False) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(duty_t).values(
                checkpoint_id="cp-001",
                msg_id=f"d{next(_msg)}",
                ts=at,
                device_ts=at,
                received_at=at,
                staff_id=staff,
                action=action,
                unknown_staff=unknown,
            )
        )


@pytest.fixture
def timers(seeded_engine: Engine, make_settings: Callable[..., Any]) -> tuple[Timers, Clock]:
    clock = Clock(NIGHT - 5 * M)
    return Timers(seeded_engine, Thresholds.from_settings(make_settings()), clock), clock


def open_of(engine: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    return {(a.type, a.subject): a.details for a in alerts(engine) if a.status == "open"}


def test_night_role_mix_no_show_and_left_post(
    seeded_engine: Engine, timers: tuple[Timers, Clock]
) -> None:
    install_defaults(seeded_engine)
    run, clock = timers
    duty(seeded_engine, "st-001-1", "on", NIGHT - 10 * M)
    duty(seeded_engine, "st-001-2", "on", NIGHT - 10 * M)
    duty(seeded_engine, "unknown-9", "on", NIGHT - 10 * M, unknown=True)  # never counts
    run.run()
    assert open_of(seeded_engine) == {}  # by day two suffice (cp-001: min_staff 2)

    clock.now = NIGHT + 6 * M  # the night rule is unmet (no community staff) past the grace
    run.run()
    (gap,) = open_of(seeded_engine).values()
    assert gap["missing_roles"] == ["community"] and gap["short"] == 1
    assert gap["since"] == NIGHT.isoformat()

    clock.now = NIGHT + 16 * M  # and the community member is a no-show
    run.run()
    assert set(open_of(seeded_engine)) == {("staffing_gap", ""), ("no_show", "st-001-3")}

    duty(seeded_engine, "st-001-3", "on", NIGHT + 20 * M)
    clock.now = NIGHT + 21 * M
    run.run()
    assert open_of(seeded_engine) == {}
    outcomes = {a.type: a.outcome for a in alerts(seeded_engine)}
    assert outcomes == {"staffing_gap": "staff_on_duty", "no_show": "on_duty_or_shift_over"}

    duty(seeded_engine, "st-001-2", "off", NIGHT + 180 * M)  # the medic leaves early
    clock.now = NIGHT + 189 * M  # within the left-post grace: only the gap
    run.run()
    assert set(open_of(seeded_engine)) == {("staffing_gap", "")}
    clock.now = NIGHT + 191 * M
    run.run()
    now_open = open_of(seeded_engine)
    assert set(now_open) == {("staffing_gap", ""), ("left_post", "st-001-2")}
    assert now_open[("staffing_gap", "")]["missing_roles"] == ["medical"]

    duty(seeded_engine, "st-001-4", "on", NIGHT + 195 * M)  # a volunteer makes up the number
    clock.now = NIGHT + 196 * M
    run.run()
    now_open = open_of(seeded_engine)
    assert set(now_open) == {("staffing_gap", "")}  # ... but is no medic
    assert now_open[("staffing_gap", "")]["missing_roles"] == ["medical"]
    assert len(alerts(seeded_engine)) == 4  # nothing else, no re-opening


def test_without_requirements_the_plain_rule_still_decides(
    seeded_engine: Engine, timers: tuple[Timers, Clock]
) -> None:
    run, clock = timers
    duty(seeded_engine, "st-001-1", "on", NIGHT - 10 * M)
    clock.now = NIGHT + 30 * M
    run.run()  # no requirement rows and no presence rows: nothing is judged
    assert alerts(seeded_engine) == []
