"""Named scenarios: a normal day plus one kind of trouble, placed within the run.

Scenario events sit at fixed fractions of the duration, so a two-hour test run and a
full simulated day show the same story at different scales.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .params import FeverCluster, Outage, SimulationParams, StaffingGap, UnregisteredWave


def normal_day(params: SimulationParams) -> SimulationParams:
    return params


def fever_cluster(params: SimulationParams) -> SimulationParams:
    d = params.duration_s
    window = min(1800.0, d * 0.2)
    return replace(params, fever_clusters=(FeverCluster(None, d * 0.4, window, people=8),))


def staffing_gap(params: SimulationParams) -> SimulationParams:
    d = params.duration_s
    length = min(2400.0, d * 0.1)
    gaps = tuple(StaffingGap(None, d * f, length) for f in (0.2, 0.4, 0.6, 0.8))
    return replace(params, staffing_gaps=gaps)


def broker_outage(params: SimulationParams) -> SimulationParams:
    d = params.duration_s
    return replace(params, outages=(Outage(d * 0.5, min(600.0, d * 0.15)),))


def unregistered_wave(params: SimulationParams) -> SimulationParams:
    d = params.duration_s
    window = min(1200.0, d * 0.15)
    wave = UnregisteredWave(None, d * 0.5, window, people=30, vehicles=8)
    return replace(params, unregistered_waves=(wave,))


SCENARIOS: dict[str, Callable[[SimulationParams], SimulationParams]] = {
    "normal-day": normal_day,
    "fever-cluster": fever_cluster,
    "staffing-gap": staffing_gap,
    "broker-outage": broker_outage,
    "unregistered-wave": unregistered_wave,
}


def scenario_params(name: str, **values: Any) -> SimulationParams:
    """Parameters of a named scenario; `values` (seed, duration_s, speed...) apply first."""
    try:
        build = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
    return build(SimulationParams(scenario=name, **values))
