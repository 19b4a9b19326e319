"""Screening quality: each pro-forma check on plain data, and the false-positive count
over a simulated week of the demo's 102 honest checkpoints (must be zero) beside a
pro-forma checkpoint in the same week (must be flagged)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from devices.simulator.params import SimulationParams
from devices.simulator.plan import Plan
from devices.simulator.screening import count_suspect, lanes_of
from services.alerts.screening_quality import (
    NO_DATA,
    OK,
    SUSPECT,
    LaneReading,
    ScreeningThresholds,
    judge,
    suspect_finding,
)
from services.core.demo import generate_community

T = ScreeningThresholds()
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def lane(
    temps: list[float], every_s: float = 8.0, matched: bool | None = True
) -> list[LaneReading]:
    return [
        LaneReading(i + 1, T0 + timedelta(seconds=i * every_s), temp, matched)
        for i, temp in enumerate(temps)
    ]


HONEST = [36.1, 36.5, 36.8, 36.3, 36.6, 36.9, 36.2, 36.4, 36.7, 36.5] * 3


def failed(verdict) -> set[str]:  # type: ignore[no-untyped-def]
    return {c["check"] for c in verdict.failed}


def test_each_check_on_its_own() -> None:
    assert judge(lane(HONEST), T).status == OK
    assert judge(lane(HONEST[:5]), T).status == NO_DATA
    # a long run of identical readings, even among honest ones
    assert failed(judge(lane(HONEST[:10] + [36.5] * 12), T)) == {"identical_run"}
    # 36.5, 36.5, 36.6 in turn: no long run, but no real crowd is that alike
    assert failed(judge(lane([36.5, 36.5, 36.6] * 10), T)) == {"spread_c"}
    # honest values, one every half second: faster than anyone can be screened
    assert failed(judge(lane(HONEST, every_s=0.5), T)) == {"interval_s"}
    # readings that met no passage
    assert failed(judge(lane(HONEST, matched=False), T)) == {"unmatched_share"}
    assert judge(lane(HONEST, matched=None), T).status == OK  # too recent to tell
    # passages all screened by one reading
    assert failed(judge(lane(HONEST), T, passages_per_reading=4)) == {"passages_per_reading"}


def test_the_alert_carries_the_evidence() -> None:
    readings = lane([36.5] * 30)
    verdict = judge(readings, T)
    assert verdict.status == SUSPECT
    finding = suspect_finding("cp-009", "res-02", "in", verdict, readings)
    assert finding is not None and finding.subject == "lane:in"
    checks = {c["check"]: c for c in finding.details["checks"]}
    assert checks["identical_run"]["statistic"] == 30 and checks["identical_run"]["threshold"] == 12
    assert checks["spread_c"]["statistic"] == 0.0 and checks["spread_c"]["threshold"] == 0.08
    assert [r["temp_c"] for r in finding.details["readings"]] == [36.5] * 30
    assert suspect_finding("cp-009", "res-02", "in", judge(lane(HONEST), T), readings) is None


def test_a_simulated_week_of_102_honest_checkpoints_raises_nothing() -> None:
    community = generate_community(seed=7, people=2000, vehicles=40, quarantined=6)
    assert len(community.checkpoints) == 102
    handheld = next(cp.id for cp in community.checkpoints if not cp.integrated_thermometer)
    start = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    params = SimulationParams(
        seed=3, start=start, duration_s=7 * 86_400, passages_per_person_day=6.0, heartbeat_s=3600
    )
    lanes = lanes_of(
        Plan(
            replace(params, proforma_checkpoints=(handheld,)), community, start.timestamp()
        ).items()
    )
    honest = {k: v for k, v in lanes.items() if k[0] != handheld}
    result = count_suspect(honest, T)
    assert len({cp for cp, _ in honest}) == 101 and result.readings > 50_000
    assert (result.suspect_evaluations, sorted(result.suspect_lanes)) == (0, [])
    # how far the honest week stayed from each threshold (docs/alerts.md quotes these)
    assert result.longest_run < T.identical_run
    assert result.smallest_spread_c is not None and result.smallest_spread_c > T.min_spread_c
    assert result.shortest_interval_s is not None and result.shortest_interval_s > T.min_interval_s
    proforma = count_suspect({k: v for k, v in lanes.items() if k[0] == handheld}, T)
    assert proforma.suspect_lanes == {(handheld, "in"), (handheld, "out")}
