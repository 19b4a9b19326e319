"""A simulated scenario through the broker, ingest and the alert rules: the alerts raised
account for exactly the incidents the simulator's manifest says it injected."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlmodel import col

from devices.simulator.params import IncidentRates, Outage, SimulationParams, StaffingGap
from devices.simulator.runner import Simulation
from devices.simulator.scenarios import scenario_params
from services.alerts.service import AlertService
from services.core.demo import DemoCommunity
from services.core.models import Alert
from services.core.settings import Settings
from services.ingest.service import IngestService
from tests.support import wait_until
from tests.support.simulation import ingest_for_simulation, run_scenario, settle

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(ingest_session_expiry_s=60)
    return settings


def occurrences(engine: Engine) -> dict[str, int]:
    """Alert type → incidents it stands for (repeats of an open alert add occurrences)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT type, sum(occurrences) FROM alert GROUP BY type"))
        return {row[0]: int(row[1]) for row in rows}


@pytest.mark.parametrize("scenario", ["fever-cluster", "unregistered-wave"])
def test_alerts_account_for_every_injected_incident(
    scenario: str,
    ingest: IngestService,
    seeded_engine: Engine,
    settings: Settings,
    small_community: DemoCommunity,
) -> None:
    manifest = run_scenario(small_community, settings, scenario)
    settle(seeded_engine, ingest, manifest)
    alerts = AlertService(settings, seeded_engine)
    try:
        while alerts.process():
            pass
    finally:
        alerts.client.disconnect()
    totals = manifest["totals"]
    raised = occurrences(seeded_engine)
    not_registered = sum(
        n for status, n in totals["registration"].items() if status != "registered"
    )
    assert totals["fevers"] > 0 and not_registered > 0
    assert raised.get("fever", 0) == totals["fevers"]
    assert raised.get("unregistered_entry", 0) == not_registered
    assert raised.get("quarantine_breach", 0) == totals["quarantined_passages"]
    with seeded_engine.connect() as conn:
        # one open alert per dedup key, enforced by the database
        keys = conn.execute(
            text(
                "SELECT dedup_key, count(*) FROM alert WHERE status <> 'resolved' "
                "GROUP BY dedup_key HAVING count(*) > 1"
            )
        ).all()
    assert keys == []


# --- timed rules on the simulated clock ------------------------------------------------
# Staffing gaps and device outages are judged by timers ("for longer than the grace",
# "nothing heard for 90 s"), so the comparison runs every service on the simulated
# clock: the simulator plays as fast as it can, and at every `tick` of simulated time
# (once everything the devices did before it is stored) the alert service processes the
# new rows and runs its timers with `now` = that tick. Ingest stamps receipt with the
# same clock (what a real-time run would give it), so "last heard" is simulated time too.

STAFFING_START = datetime(2026, 3, 1, 22, 50, tzinfo=UTC)  # 06:50 Shanghai: a shift change
OUTAGE_START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 Shanghai: no shift change


@dataclass(frozen=True)
class Expected:
    """A condition alert the manifest predicts: opened in [opened_from, opened_by]
    (equal when exact), resolved at `resolved` (None: still open when the run ended)."""

    checkpoint_id: str
    opened_from: float
    opened_by: float
    resolved: float | None


@dataclass(frozen=True)
class Raised:
    checkpoint_id: str
    opened: float
    resolved: float | None
    occurrences: int
    outcome: str | None


def epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def first_tick(ticks: list[float], after: float) -> float | None:
    return next((t for t in ticks if t > after), None)


def expected_staffing_gaps(
    manifest: dict[str, Any], grace_s: float, ticks: list[float]
) -> list[Expected]:
    """A gap is seen by the tick at `t` when it began before `t` and had not ended before
    it; it alerts at the first such tick `grace_s` or more after it began."""
    expected = []
    for cp_id, counts in manifest["checkpoints"].items():
        for gap in counts["staffing_gaps"]:
            start = epoch(gap["start"])
            end = epoch(gap["end"]) if gap["end"] else float("inf")
            seen = [t for t in ticks if start < t <= end and t - start >= grace_s]
            if seen:
                expected.append(Expected(cp_id, seen[0], seen[0], first_tick(ticks, end)))
    return expected


def expected_device_offline(
    manifest: dict[str, Any], silence_s: float, ticks: list[float], tick_s: float
) -> list[Expected]:
    """A drop makes the broker publish the device's will (`offline`): the alert opens at
    the next tick. A clean disconnect (broker outage) is only noticed as silence, counted
    from the device's last message; ingest stamps its receipt by the next tick at the
    latest, hence the window of two ticks. Either ends at the first tick after the
    device is back."""
    expected = []
    for cp_id, counts in manifest["checkpoints"].items():
        for window in counts["device_windows"]:
            if window["kind"] == "drift":
                continue
            start, end = epoch(window["start"]), epoch(window["end"])
            back = first_tick(ticks, end)
            if window["kind"] == "drop":
                opened = first_tick(ticks, start)
                assert opened is not None
                expected.append(Expected(cp_id, opened, opened, back))
                continue
            heard = epoch(window["last_message"])
            if end - heard <= silence_s:
                continue  # back before the silence could exceed the limit
            # between the two, whether a tick catches it depends on the receipt time
            assert end - heard > silence_s + 2 * tick_s, f"ambiguous window {window}"
            opened_from = min(t for t in ticks if t > heard + silence_s)
            expected.append(Expected(cp_id, opened_from, heard + silence_s + 2 * tick_s, back))
    return expected


def raised(engine: Engine, alert_type: str) -> list[Raised]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                col(Alert.checkpoint_id),
                col(Alert.opened_at),
                col(Alert.resolved_at),
                col(Alert.occurrences),
                col(Alert.outcome),
            ).where(col(Alert.type) == alert_type)
        ).all()
    return [
        Raised(r[0], r[1].timestamp(), r[2].timestamp() if r[2] else None, r[3], r[4]) for r in rows
    ]


def mismatches(expected: list[Expected], actual: list[Raised], outcome: str) -> list[str]:
    """Pair predicted and raised alerts per checkpoint in time order; describe every
    difference (an empty list: exactly the predicted alerts, each once)."""
    problems = []
    checkpoints = {e.checkpoint_id for e in expected} | {a.checkpoint_id for a in actual}
    for cp_id in sorted(checkpoints):
        mine = sorted(
            (e for e in expected if e.checkpoint_id == cp_id), key=lambda e: e.opened_from
        )
        got = sorted((a for a in actual if a.checkpoint_id == cp_id), key=lambda a: a.opened)
        if len(mine) != len(got):
            problems.append(f"{cp_id}: expected {mine}, raised {got}")
            continue
        for e, a in zip(mine, got, strict=True):
            timely = e.opened_from - 0.001 <= a.opened <= e.opened_by + 0.001
            ends = (
                (a.resolved is None)
                if e.resolved is None
                else (a.resolved is not None and abs(a.resolved - e.resolved) < 0.001)
            )
            right = a.occurrences == 1 and a.outcome == (None if e.resolved is None else outcome)
            if not (timely and ends and right):
                problems.append(f"{cp_id}: expected {e}, raised {a}")
    return problems


def play_on_the_simulated_clock(
    params: SimulationParams,
    community: DemoCommunity,
    settings: Settings,
    engine: Engine,
    ingest: IngestService,
    tick_s: float,
) -> tuple[dict[str, Any], list[float]]:
    simulation = Simulation(
        params,
        community,
        settings=settings,
        max_rate=3000,
        client_id_template=f"sim-{uuid.uuid4().hex[:6]}-{{checkpoint_id}}",
        progress=False,
    )

    def clock() -> datetime:
        return datetime.fromtimestamp(simulation.now, UTC)

    # ingest's receipt times (last heard, the base of the device-clock rule) follow it
    ingest.clock = clock
    alerts = AlertService(settings, engine, clock=clock)
    ticks: list[float] = []

    def tick(t: float) -> None:
        # ingest acknowledges after commit: everything sent before `t` is stored
        wait_until(lambda: ingest.stats.acked >= simulation.deliveries, timeout=30, interval=0.002)
        alerts.process()
        alerts.run_timers()
        ticks.append(t)

    try:
        manifest = simulation.run(on_tick=tick, tick_s=tick_s)
    finally:
        alerts.deliverer.close()
        alerts.webhooks.close()
        alerts.client.disconnect()
    assert manifest["completed"] and manifest["unacknowledged"] == 0
    start, end = epoch(manifest["start"]), epoch(manifest["end"])
    assert ticks == [start + k * tick_s for k in range(1, int((end - start) // tick_s) + 1)]
    return manifest, ticks


@pytest.fixture
def clocked_settings(make_settings: Any) -> Settings:
    # small ingest batches: each tick waits for the last message to be committed
    # and no offline confirmation: the predictions below are of when a condition is first
    # seen (the confirmation is tested in test_alert_rules.py and test_alert_service.py)
    settings: Settings = make_settings(
        ingest_session_expiry_s=60, ingest_batch_ms=2, device_offline_confirm_s=0
    )
    return settings


@pytest.fixture
def clocked_ingest(
    seeded_engine: Engine, clocked_settings: Settings, small_community: DemoCommunity
) -> Iterator[IngestService]:
    with ingest_for_simulation(clocked_settings, seeded_engine, small_community) as service:
        yield service


def test_staffing_gaps_alert_exactly_as_the_manifest_predicts(
    clocked_ingest: IngestService,
    seeded_engine: Engine,
    clocked_settings: Settings,
    small_community: DemoCommunity,
) -> None:
    tick_s, d = 30.0, 2 * 3600.0
    params = scenario_params(
        "staffing-gap",
        seed=19,
        start=STAFFING_START,
        duration_s=d,
        speed=0,
        passages_per_person_day=2.0,
        rates=replace(IncidentRates(), staffing_gap=0.1, device_drop=0.0, clock_drift=0.0),
    )
    # and two brief absences, shorter than the grace: no alert
    brief = (StaffingGap(None, d * 0.12, 120.0), StaffingGap(None, d * 0.32, 270.0))
    params = replace(params, staffing_gaps=params.staffing_gaps + brief)
    manifest, ticks = play_on_the_simulated_clock(
        params,
        small_community,
        clocked_settings,
        seeded_engine,
        clocked_ingest,
        tick_s,
    )
    grace = clocked_settings.staffing_grace_s
    gaps = [g for cp in manifest["checkpoints"].values() for g in cp["staffing_gaps"]]
    lengths = [g["duration_s"] for g in gaps]
    # the run has gaps of every sort: walk-outs, late shifts, still open at the end, brief
    assert sum(1 for n in lengths if n is not None and n < grace) >= 2
    assert sum(1 for n in lengths if n is not None and n > grace) >= 5
    assert None in lengths
    # and (seed 19) a walk-out at a two-staff checkpoint already short of one, late:
    # a second member leaves during the gap, which must not start it again
    walk_outs = [STAFFING_START.timestamp() + g.at_s for g in params.staffing_gaps]
    assert any(
        g["min_staff"] > 1
        and any(epoch(g["start"]) < t < epoch(g["end"] or manifest["end"]) for t in walk_outs)
        for g in gaps
    )
    expected = expected_staffing_gaps(manifest, grace, ticks)
    assert len(expected) >= 5
    problems = mismatches(expected, raised(seeded_engine, "staffing_gap"), "staff_on_duty")
    assert not problems, "\n".join(problems)
    # every device heard, clocks right, on the same simulated clock: nothing else raised
    assert raised(seeded_engine, "device_offline") == []
    assert raised(seeded_engine, "clock_skew") == []


def test_device_outages_alert_exactly_as_the_manifest_predicts(
    clocked_ingest: IngestService,
    seeded_engine: Engine,
    clocked_settings: Settings,
    small_community: DemoCommunity,
) -> None:
    tick_s, d = 10.0, 3600.0
    params = scenario_params(
        "broker-outage",
        seed=21,
        start=OUTAGE_START,
        duration_s=d,
        speed=0,
        passages_per_person_day=2.0,
        rates=replace(IncidentRates(), device_drop=6.0, clock_drift=0.0),
    )
    # and a blip: every device away for 20 s, back before its silence could count
    params = replace(params, outages=(*params.outages, Outage(d * 0.25, 20.0)))
    manifest, ticks = play_on_the_simulated_clock(
        params,
        small_community,
        clocked_settings,
        seeded_engine,
        clocked_ingest,
        tick_s,
    )
    windows = manifest["totals"]["device_windows"]
    assert windows["outage"] == 2 * 102 and windows.get("drop", 0) >= 5
    silence = clocked_settings.device_silence_s
    expected = expected_device_offline(manifest, silence, ticks, tick_s)
    assert len(expected) == 102 + windows["drop"]  # the long outage and every drop
    problems = mismatches(expected, raised(seeded_engine, "device_offline"), "device_online")
    assert not problems, "\n".join(problems)
    staffing = expected_staffing_gaps(manifest, clocked_settings.staffing_grace_s, ticks)
    assert mismatches(staffing, raised(seeded_engine, "staffing_gap"), "staff_on_duty") == []
    # a backlog replayed on reconnect carries its old timestamps but is received now
    assert raised(seeded_engine, "clock_skew") == []
