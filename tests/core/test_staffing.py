"""Staffing against requirements: intervals from duty events, the role mix, timelines."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.core.staffing import (
    DEFAULT_REQUIREMENTS,
    CheckpointStaffing,
    DutyFact,
    Requirement,
    minutes_anyone,
    minutes_meeting,
    missing,
    on_duty_intervals,
    requirements_at,
    timeline,
    unmet_since,
)

TZ = ZoneInfo("Asia/Shanghai")
# 2026-12-01 22:00 local = 14:00 UTC
T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def test_night_rule_covers_midnight_and_day_rule_the_rest() -> None:
    night, day = DEFAULT_REQUIREMENTS
    assert [r.label for r in requirements_at(DEFAULT_REQUIREMENTS, T0, TZ)] == ["day"]
    assert requirements_at(DEFAULT_REQUIREMENTS, T0 + 60 * M, TZ) == [night]  # 23:00
    assert requirements_at(DEFAULT_REQUIREMENTS, T0 + 7 * 60 * M, TZ) == [night]  # 05:00
    assert requirements_at(DEFAULT_REQUIREMENTS, T0 + 8 * 60 * M, TZ) == [day]  # 06:00


def test_missing_names_the_count_and_each_absent_role() -> None:
    night = DEFAULT_REQUIREMENTS[0]
    assert missing([night], ["police", "medical", "community"]) is None
    lack = missing([night], ["police", "volunteer", "volunteer"])
    assert lack is not None and lack.short == 0 and lack.roles == ("community", "medical")
    lack = missing([night], ["police", "medical"])
    assert lack is not None and lack.short == 1 and lack.roles == ("community",)
    # two police do not stand in for a medic; min_staff raises the count
    assert missing([night], ["police", "police", "community"]).roles == ("medical",)  # type: ignore[union-attr]
    assert missing([], ["police"], min_staff=2).short == 1  # type: ignore[union-attr]
    assert missing([], ["police"], min_staff=0) is None


def test_intervals_pair_on_and_off_and_clip_to_the_window() -> None:
    facts = [
        DutyFact("cp", "a", T0 - 10 * M, True),
        DutyFact("cp", "a", T0 + 30 * M, False),
        DutyFact("cp", "b", T0 + 20 * M, False),  # on before the facts: from start
        DutyFact("cp", "c", T0 + 40 * M, True),
        DutyFact("cp", "c", T0 + 45 * M, True),  # a repeated on is one period
    ]
    got = on_duty_intervals(facts, T0, T0 + 60 * M)
    assert got[("cp", "a")] == [(T0, T0 + 30 * M)]
    assert got[("cp", "b")] == [(T0, T0 + 20 * M)]
    assert got[("cp", "c")] == [(T0 + 40 * M, T0 + 60 * M)]


def test_timeline_meets_the_night_rule_only_with_the_right_mix() -> None:
    roles = {"p": "police", "m": "medical", "c": "community", "v": "volunteer"}
    end = T0 + 3 * 60 * M  # 22:00 .. 01:00 local
    cp = CheckpointStaffing(
        "cp",
        DEFAULT_REQUIREMENTS,
        periods={
            "p": [(T0, end)],
            "v": [(T0, end)],
            "m": [(T0 + 60 * M, end)],  # medic from 23:00
            "c": [(T0 + 90 * M, end)],  # community staff only from 23:30
        },
    )
    segments = timeline(cp, roles, T0, end, TZ)
    met, governed = minutes_meeting(segments)
    assert governed == 180 and met == 60 + 90  # day rule 22-23 met; night from 23:30
    assert minutes_anyone(segments) == 180
    unmet = [s for s in segments if not s.met]
    assert len(unmet) == 1 and unmet[0].missing.roles == ("community",)  # type: ignore[union-attr]
    assert unmet_since(segments) is None
    # cut off at 23:15: unmet since the night rule began at 23:00
    assert unmet_since(timeline(cp, roles, T0, T0 + 75 * M, TZ)) == T0 + 60 * M


def test_no_requirement_and_no_min_staff_counts_nothing() -> None:
    cp = CheckpointStaffing("cp", [Requirement("x", 0, 60, 1)], min_staff=0)
    segments = timeline(cp, {}, T0, T0 + 60 * M, TZ)  # 22:00-23:00: outside 00:00-01:00
    assert minutes_meeting(segments) == (0.0, 0.0)
