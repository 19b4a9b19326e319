"""The roster rules on plain data: when a no-show and an early departure hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.alerts.roster_rules import RosterThresholds, ShiftFact, roster_conditions

T0 = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)  # the shift starts
M = timedelta(minutes=1)
END = T0 + 480 * M
RT = RosterThresholds(staffing_grace=5 * M, no_show_after=15 * M, left_post_grace=10 * M)


def shift(*periods: tuple[int, int]) -> ShiftFact:
    spans = tuple((T0 + a * M, T0 + b * M) for a, b in periods)
    return ShiftFact("cp-1", "site", "s1", "medical", T0, END, spans)


def kinds(fact: ShiftFact, minute: int, on_duty: int = 0) -> list[str]:
    return [f.type.value for f in roster_conditions([fact], {"cp-1": on_duty}, T0 + minute * M, RT)]


def test_no_show_after_the_grace_and_early_arrival_counts() -> None:
    assert kinds(shift(), 14) == []
    assert kinds(shift(), 15) == ["no_show"]
    assert kinds(shift((-10, 600)), 20, on_duty=1) == []  # arrived ten minutes early
    assert kinds(shift((-120, -5)), 20) == ["no_show"]  # left before the shift began
    assert kinds(shift(), 480) == []  # the shift is over


def test_left_post_needs_an_early_departure_a_long_absence_and_no_replacement() -> None:
    gone = shift((-5, 120))
    assert kinds(gone, 129) == []  # not yet away for the grace
    assert kinds(gone, 130) == ["left_post"]
    assert kinds(gone, 130, on_duty=1) == []  # someone made up the number
    assert kinds(shift((-5, 120), (135, 480)), 140, on_duty=1) == []  # came back
    assert kinds(shift((-5, 471)), 479) == []  # left within the grace of the end
