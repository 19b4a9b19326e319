"""What a simulation run is asked to do: time span, speed, incident rates, scenario events.

Everything here is plain data. A scenario (see `scenarios.py`) is a function that turns
default parameters into its own; the command line then overrides single values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta

PER_DAY_RATES = frozenset({"quarantine_attempt", "device_drop", "clock_drift"})


@dataclass(frozen=True, slots=True)
class IncidentRates:
    """How often each incident happens. Per person passage unless the name says otherwise."""

    visitor: float = 0.03  # an unknown person (valid ID, not in the registry)
    no_pass: float = 0.01  # a registered person who shows no pass
    unknown_pass: float = 0.003  # a pass code nobody issued
    invalid_id: float = 0.003  # an ID number that fails validation, or none at all
    expired_pass: float = 0.002
    revoked_pass: float = 0.001
    borrowed_pass: float = 0.002  # someone else's pass with one's own ID: pass_mismatch
    fever: float = 0.002  # a temperature at or above the fever threshold
    unscreened: float = 0.01  # nobody took the temperature
    implausible_reading: float = 0.003  # per handheld reading: 25 °C, 48 °C...
    unlinked_reading: float = 0.1  # per handheld reading: sent without entry_msg_id
    duplicate: float = 0.002  # per entry/reading/duty message: published twice (QoS 1)
    unregistered_vehicle: float = 0.15  # per vehicle passage
    quarantine_attempt: float = 0.05  # per quarantined person per day: tries to go out
    device_drop: float = 0.02  # per device per day: the connection dies, the will fires
    clock_drift: float = 0.01  # per device per day: the clock runs minutes ahead
    staffing_gap: float = 0.01  # per shift change: the next shift comes late

    def with_overrides(self, text: str) -> IncidentRates:
        """`"fever=0.01,duplicate=0.05"` -> a copy with those rates."""
        names = {f.name for f in fields(self)}
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, raw = part.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in names:
                raise ValueError(f"unknown rate {name!r}; known: {', '.join(sorted(names))}")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"rate {name} must be a number, got {raw!r}") from None
            limit = 100.0 if name in PER_DAY_RATES else 1.0
            if not 0.0 <= value <= limit:
                raise ValueError(f"rate {name} must be between 0 and {limit:g}, got {value}")
            values[name] = value
        return replace(self, **values)


@dataclass(frozen=True, slots=True)
class FeverCluster:
    """Several people with fever at one site within a short window."""

    site_id: str | None  # None: the most populous residential site
    at_s: float  # seconds after the start
    window_s: float
    people: int


@dataclass(frozen=True, slots=True)
class UnregisteredWave:
    """A burst of entries by unregistered people and vehicles at one site."""

    site_id: str | None
    at_s: float
    window_s: float
    people: int
    vehicles: int


@dataclass(frozen=True, slots=True)
class StaffingGap:
    """Nobody (or too few) on duty at a checkpoint for a while."""

    checkpoint_id: str | None  # None: chosen by the seed
    at_s: float
    length_s: float


@dataclass(frozen=True, slots=True)
class Outage:
    """Devices lose the broker; they buffer and publish the backlog when it returns."""

    at_s: float
    length_s: float
    checkpoint_ids: tuple[str, ...] = ()  # empty: every device


@dataclass(frozen=True, slots=True)
class SimulationParams:
    seed: int = 1
    start: datetime | None = None  # None: chosen when the run starts (see resolve_start)
    duration_s: float = 86_400.0
    speed: float = 1.0  # simulated seconds per real second; 0 = as fast as possible
    scenario: str = "normal-day"
    passages_per_person_day: float = 2.0
    vehicle_passages_per_vehicle_day: float = 2.0
    heartbeat_s: float = 30.0  # docs/protocol.md: every 30 s
    fever_threshold_c: float = 37.3
    timezone: str = "Asia/Shanghai"
    final_status: bool = True  # devices publish `offline` and disconnect at the end
    rates: IncidentRates = field(default_factory=IncidentRates)
    fever_clusters: tuple[FeverCluster, ...] = ()
    unregistered_waves: tuple[UnregisteredWave, ...] = ()
    staffing_gaps: tuple[StaffingGap, ...] = ()
    outages: tuple[Outage, ...] = ()
    # handheld checkpoints whose thermometer shows the same reading whoever passes
    proforma_checkpoints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.duration_s < 120:
            raise ValueError("duration must be at least 2 minutes")
        if self.speed < 0:
            raise ValueError("speed must be positive (0 means as fast as possible)")
        if self.heartbeat_s <= 0:
            raise ValueError("heartbeat interval must be positive")

    def resolve_start(self, now: datetime | None = None) -> datetime:
        """When unset: accelerated runs end at the wall clock's `now` so no simulated
        timestamp lies in the future; real-time runs start now."""
        if self.start is not None:
            return self.start.astimezone(UTC)
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        if self.speed == 1.0:
            return now
        return now - timedelta(seconds=self.duration_s)


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d` -> seconds."""
    match = _DURATION_RE.match(text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (examples: 90s, 15m, 2h, 1d)")
    return float(match.group(1)) * _UNITS[match.group(2)]
