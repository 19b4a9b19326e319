"""Planned ahead of the stream: duty rosters, device windows (drops, outages, drifting
clocks) and the passages a scenario adds. Each draws from its own seeded generator, so
changing one kind of incident does not reshuffle the others."""

from __future__ import annotations

import random
from dataclasses import dataclass

from services.core.demo import DemoCheckpoint, DemoCommunity

from .params import SimulationParams
from .population import Population, Shown
from .staffing import DutyRoster
from .traffic import PlannedPassage, Traffic, poisson

QUIET_END_S = 120.0  # every device is back online this long before the end
DRIFT_AHEAD_S = (360.0, 1200.0)  # a drifting clock runs 6-20 minutes ahead
DRIFT_LENGTH_S = (600.0, 3600.0)
DROP_LENGTH_S = (60.0, 600.0)


@dataclass(frozen=True, slots=True)
class Window:
    """A device offline (`drop`, `outage`) or with a drifting clock (`drift`)."""

    checkpoint_id: str
    kind: str
    start: float
    end: float
    offset_s: float = 0.0


def plan_duty(
    params: SimulationParams, community: DemoCommunity, start: float, end: float
) -> dict[str, DutyRoster]:
    """Every checkpoint's shifts, with the scenario's forced staffing gaps."""
    rng = random.Random(f"{params.seed}-duty")
    rosters = {
        cp.id: DutyRoster.plan(cp, start, end, params.timezone, rng, params.rates.staffing_gap)
        for cp in community.checkpoints
    }
    ids = sorted(rosters)
    for gap in params.staffing_gaps:
        cp_id = gap.checkpoint_id or rng.choice(ids)
        if cp_id not in rosters:
            raise ValueError(f"staffing gap at unknown checkpoint {cp_id!r}")
        t0 = start + gap.at_s
        rosters[cp_id].walk_out(t0, min(t0 + gap.length_s, end))
    return rosters


def plan_windows(
    params: SimulationParams, checkpoint_ids: list[str], start: float, end: float
) -> list[Window]:
    """When devices drop off, lose the broker, or have a drifting clock."""
    rng = random.Random(f"{params.seed}-devices")
    days = params.duration_s / 86_400
    latest = end - QUIET_END_S
    windows: list[Window] = []
    for outage in params.outages:
        t0 = start + outage.at_s
        t1 = min(t0 + outage.length_s, latest)
        for cp_id in outage.checkpoint_ids or tuple(checkpoint_ids):
            if t1 > t0:
                windows.append(Window(cp_id, "outage", t0, t1))
    for cp_id in checkpoint_ids:
        for _ in range(poisson(rng, params.rates.device_drop * days)):
            t0 = rng.uniform(start + 60, latest - DROP_LENGTH_S[1])
            window = Window(cp_id, "drop", t0, t0 + rng.uniform(*DROP_LENGTH_S))
            if not _overlaps(window, windows):
                windows.append(window)
        for _ in range(poisson(rng, params.rates.clock_drift * days)):
            t0 = rng.uniform(start, latest)
            t1 = min(t0 + rng.uniform(*DRIFT_LENGTH_S), end)
            window = Window(cp_id, "drift", t0, t1, round(rng.uniform(*DRIFT_AHEAD_S)))
            if not _overlaps(window, windows):
                windows.append(window)
    return sorted(windows, key=lambda w: (w.start, w.checkpoint_id, w.kind))


def plan_scenario_passages(
    params: SimulationParams, community: DemoCommunity, traffic: Traffic, start: float, end: float
) -> list[PlannedPassage]:
    """The passages a scenario adds: a fever cluster, an unregistered wave."""
    rng, latest = traffic.rng, end - 60
    forced: list[PlannedPassage] = []
    for cluster in params.fever_clusters:
        gates = site_gates(community, traffic.population, cluster.site_id)
        for _ in range(cluster.people):
            t = min(start + cluster.at_s + rng.uniform(0, cluster.window_s), latest)
            cp = rng.choice(gates)
            shown, _ = traffic.identity(cp, None)
            passage = PlannedPassage(t, cp, "in", "person", shown, "fever_cluster")
            traffic.screen(passage, fever=True)
            forced.append(passage)
    for wave in params.unregistered_waves:
        gates = site_gates(community, traffic.population, wave.site_id)
        for _ in range(wave.people):
            t = min(start + wave.at_s + rng.uniform(0, wave.window_s), latest)
            cp = rng.choice(gates)
            kind = rng.choice(("visitor", "no_pass", "unknown_pass", "invalid_id"))
            shown, incident = traffic.identity(cp, kind)
            forced.append(PlannedPassage(t, cp, "in", "person", shown, incident))
        vehicle_gates = [g for g in community.checkpoints if g.vehicle_gate]
        at_site = site_gates(community, traffic.population, wave.site_id, vehicles=True)
        barriers = [g for g in at_site if g.vehicle_gate] or vehicle_gates
        for _ in range(wave.vehicles):
            t = min(start + wave.at_s + rng.uniform(0, wave.window_s), latest)
            cp = rng.choice(barriers)
            passage = traffic.vehicle(cp, t, "in")
            passage.shown = Shown(plate=rng.choice(traffic.population.unknown_plates))
            passage.incident = "unregistered_vehicle"
            forced.append(passage)
    return sorted(forced, key=lambda p: (p.t, p.checkpoint.id))


def site_gates(
    community: DemoCommunity, population: Population, site_id: str | None, vehicles: bool = False
) -> list[DemoCheckpoint]:
    """A site's gates (pedestrian ones unless `vehicles`); None: the most populous site."""
    if site_id is None:  # the most populous residential site
        sizes = {s.id: len(population.valid[s.id]) for s in community.sites}
        site_id = max(sizes, key=lambda s: (sizes[s], s))
    gates = [cp for cp in community.checkpoints if cp.site_id == site_id]
    if not gates:
        raise ValueError(f"unknown site {site_id!r}")
    return gates if vehicles else [g for g in gates if not g.vehicle_gate] or gates


def _overlaps(window: Window, windows: list[Window]) -> bool:
    margin = 60.0
    return any(
        w.checkpoint_id == window.checkpoint_id
        and w.start - margin < window.end
        and window.start < w.end + margin
        for w in windows
    )
