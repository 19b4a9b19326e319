"""Coverage arithmetic: pure functions over plain numbers, no database.

Everything is first computed per UTC hour of an hour-aligned window (the grain of the
`coverage_rollup` table), then summed into the requested buckets (hours, or days of the
community's time zone). Times are epoch seconds (ints) so the hot loops stay cheap.
See docs/metrics.md for the definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from services.core.models.events import ROLLUP_COUNTERS

HOUR = 3600
State = TypeVar("State")


def floor_hour(dt: datetime) -> datetime:
    dt = dt.astimezone(UTC)
    return dt.replace(minute=0, second=0, microsecond=0)


def ceil_hour(dt: datetime) -> datetime:
    floored = floor_hour(dt)
    return floored if floored == dt.astimezone(UTC) else floored + timedelta(hours=1)


def epoch(dt: datetime) -> int:
    return int(dt.timestamp())


@dataclass(slots=True)
class HourSeries:
    """Per-hour accumulators over a window of `hours` hours starting at `start` (epoch)."""

    start: int
    hours: int
    counters: list[dict[str, int]] = field(default_factory=list)
    staffed_s: list[float] = field(default_factory=list)
    online_s: list[float] = field(default_factory=list)
    checkpoint_s: list[float] = field(default_factory=list)
    alerts_opened: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.hours
        self.counters = [dict.fromkeys(ROLLUP_COUNTERS, 0) for _ in range(n)]
        self.staffed_s = [0.0] * n
        self.online_s = [0.0] * n
        self.checkpoint_s = [0.0] * n
        self.alerts_opened = [0] * n

    def index(self, ts: int) -> int:
        return (ts - self.start) // HOUR


class SegmentAdder:
    """Adds time segments [a, b) to per-hour seconds in O(1) each: partial hours at the
    ends directly, whole hours in between through a difference array."""

    def __init__(self, start: int, hours: int) -> None:
        self.start = start
        self.hours = hours
        self.partial = [0.0] * hours
        self.full = [0] * (hours + 1)

    def add(self, a: int, b: int) -> None:
        if b <= a:
            return
        i = (a - self.start) // HOUR
        j = (b - self.start) // HOUR
        if i == j:
            self.partial[i] += b - a
            return
        self.partial[i] += self.start + (i + 1) * HOUR - a
        if j > i + 1:
            self.full[i + 1] += 1
            self.full[j] -= 1
        if j < self.hours:
            self.partial[j] += b - (self.start + j * HOUR)

    def into(self, out: list[float]) -> None:
        running = 0
        for k in range(self.hours):
            running += self.full[k]
            out[k] += self.partial[k] + running * HOUR


def time_where(
    adder: SegmentAdder,
    start: int,
    end: int,
    state: State,
    events: Iterable[tuple[int, Any]],
    apply: Callable[[State, Any], State],
    good: Callable[[State], bool],
) -> None:
    """Add to `adder` the time in [start, end) during which `good(state)` holds, given the
    state at `start` and the events (epoch, change) in time order."""
    if end <= start:
        return
    holding = good(state)
    since = start
    for ts, change in events:
        at = min(max(ts, start), end)
        state = apply(state, change)
        now_good = good(state)
        if now_good != holding:
            if holding:
                adder.add(since, at)
            since = at
            holding = now_good
    if holding:
        adder.add(since, end)


def apply_duty(on_duty: frozenset[str], change: tuple[str, str]) -> frozenset[str]:
    staff_id, action = change
    return on_duty | {staff_id} if action == "on" else on_duty - {staff_id}


def apply_status(_state: str, change: str) -> str:
    return change


def add_checkpoint_time(series: HourSeries, checkpoints: int, until: int) -> None:
    """Checkpoint-seconds per hour: every active checkpoint counts, up to `until` (now)."""
    for k in range(series.hours):
        hour_start = series.start + k * HOUR
        elapsed = min(max(until - hour_start, 0), HOUR)
        series.checkpoint_s[k] += checkpoints * elapsed


# --- buckets ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    end: datetime
    label: str
    first_hour: int  # index into the HourSeries
    last_hour: int  # exclusive


def hour_buckets(start: datetime, hours: int) -> list[Bucket]:
    return [
        Bucket(
            start + timedelta(hours=k),
            start + timedelta(hours=k + 1),
            (start + timedelta(hours=k)).isoformat().replace("+00:00", "Z"),
            k,
            k + 1,
        )
        for k in range(hours)
    ]


def day_buckets(start: datetime, hours: int, timezone: str) -> list[Bucket]:
    """Group the window's hours by the local date at which each hour starts."""
    zone = ZoneInfo(timezone)
    buckets: list[Bucket] = []
    first = 0
    current = (start).astimezone(zone).date()
    for k in range(1, hours + 1):
        day = (start + timedelta(hours=k)).astimezone(zone).date() if k < hours else None
        if day != current:
            buckets.append(
                Bucket(
                    start + timedelta(hours=first),
                    start + timedelta(hours=k),
                    current.isoformat(),
                    first,
                    k,
                )
            )
            first = k
            if day is not None:
                current = day
    return buckets


# --- figures ---------------------------------------------------------------------------
def ratio(numerator: float, denominator: float) -> float | None:
    """None when there is nothing to measure: no passages is not 0 % nor 100 %."""
    if denominator <= 0:
        return None
    return round(numerator / denominator, 6)


def figures(series: HourSeries, first: int, last: int) -> dict[str, Any]:
    """The published figures of hours [first, last) of the series."""
    sums = dict.fromkeys(ROLLUP_COUNTERS, 0)
    for k in range(first, last):
        for name, value in series.counters[k].items():
            sums[name] += value
    staffed = sum(series.staffed_s[first:last])
    online = sum(series.online_s[first:last])
    cp_time = sum(series.checkpoint_s[first:last])
    persons = sums["persons_in"] + sums["persons_out"]
    vehicles = sums["vehicles_in"] + sums["vehicles_out"]
    return {
        "passages": {
            "total": sums["passages"],
            "persons": persons,
            "vehicles": vehicles,
            "in": sums["persons_in"] + sums["vehicles_in"],
            "out": sums["persons_out"] + sums["vehicles_out"],
            "persons_in": sums["persons_in"],
            "persons_out": sums["persons_out"],
            "vehicles_in": sums["vehicles_in"],
            "vehicles_out": sums["vehicles_out"],
        },
        "screened_persons": sums["screened_persons"],
        "registered": sums["registered"],
        "unregistered": sums["passages"] - sums["registered"],
        "quarantine_breaches": sums["quarantine_passages"],
        "readings": sums["readings"],
        "fevers": sums["fevers"],
        "implausible_readings": sums["implausible_readings"],
        "alerts_opened": sum(series.alerts_opened[first:last]),
        "checkpoint_minutes": round(cp_time / 60, 2),
        "staffed_minutes": round(staffed / 60, 2),
        "online_minutes": round(online / 60, 2),
        "temperature_coverage": ratio(sums["screened_persons"], persons),
        "registration_coverage": ratio(sums["registered"], sums["passages"]),
        "staffing_coverage": ratio(staffed, cp_time),
        "device_uptime": ratio(online, cp_time),
    }


def bucket_figures(series: HourSeries, buckets: Sequence[Bucket]) -> list[dict[str, Any]]:
    out = []
    for bucket in buckets:
        row = figures(series, bucket.first_hour, bucket.last_hour)
        row.update(start=bucket.start, end=bucket.end, label=bucket.label)
        out.append(row)
    return out
