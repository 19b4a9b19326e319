"""Coverage arithmetic: pure functions over plain numbers, no database.

Everything is first computed per UTC hour of an hour-aligned window (the grain of the
`coverage_rollup` table), then summed into the requested buckets (hours, or days of the
community's time zone). Times are epoch seconds (ints) so the hot loops stay cheap.
See docs/metrics.md for the definitions.
"""

from __future__ import annotations

import functools
import operator
from collections import Counter
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


def hours_between(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds()) // HOUR


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


def held_stretches(
    adder: SegmentAdder,
    start: int,
    end: int,
    state: State,
    events: Iterable[tuple[int, Any]],
    apply: Callable[[State, Any], State],
    good: Callable[[State], bool],
) -> int | None:
    """Add to `adder` the stretches of [start, end) during which `good(state)` held and
    that ended before `end`, given the state at `start` and the events (epoch, change) in
    time order; return the start of the stretch still holding at `end` (None if none)."""
    if end <= start:
        return None
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
    return since if holding else None


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
    since = held_stretches(adder, start, end, state, events, apply, good)
    if since is not None:
        adder.add(since, end)


@dataclass(frozen=True, slots=True)
class HeldTime:
    """Seconds per hour during which a condition held, as known at `until`: `closed`
    holds the stretches that had ended, `open_since` the starts of those still holding.
    With no event after `until` (`extendable`), the same answer for any later instant is
    the open stretches run on to it, which is what lets it be kept between requests."""

    start: int
    closed: tuple[float, ...]
    open_since: tuple[int, ...]
    until: int
    extendable: bool

    def seconds(self, until: int) -> list[float]:
        if until < self.until or (until > self.until and not self.extendable):
            raise ValueError("the held time was computed for another instant")
        adder = SegmentAdder(self.start, len(self.closed))
        for since in self.open_since:
            adder.add(since, until)
        out = list(self.closed)
        adder.into(out)
        return out


Period = tuple[int | None, int | None]  # in service from, until (epoch; None: unbounded)
ALWAYS: Period = (None, None)


def held_time(
    start: int,
    hours: int,
    until: int,
    histories: Iterable[tuple[State, Sequence[tuple[int, Any]], Callable[[State], bool], Period]],
    apply: Callable[[State, Any], State],
) -> HeldTime:
    """`HeldTime` summed over several histories: (state at `start`, events, good, the
    in-service period, outside which nothing counts)."""
    adder = SegmentAdder(start, hours)
    open_since = []
    latest = start
    extendable = start < until
    for state, events, good, (since_s, until_s) in histories:
        begin = start if since_s is None else max(start, since_s)
        if since_s is not None and since_s > until:
            extendable = False  # it enters service later: the answer then changes
        if until_s is not None and until_s <= until:
            # out of service by now: its last stretch is closed, not running on
            time_where(adder, begin, min(until_s, until), state, events, apply, good)
        else:
            if until_s is not None:
                extendable = False  # it leaves service later: its stretch stops there
            since = held_stretches(adder, begin, until, state, events, apply, good)
            if since is not None:
                open_since.append(since)
        if events:
            latest = max(latest, events[-1][0])
    closed = [0.0] * hours
    adder.into(closed)
    # before `start` nothing was followed: no state to run on from
    return HeldTime(start, tuple(closed), tuple(open_since), until, extendable and latest <= until)


def apply_duty(on_duty: frozenset[str], change: tuple[str, str]) -> frozenset[str]:
    staff_id, action = change
    return on_duty | {staff_id} if action == "on" else on_duty - {staff_id}


def apply_status(_state: str, change: str) -> str:
    return change


def add_checkpoint_time(series: HourSeries, periods: Iterable[Period], until: int) -> None:
    """Checkpoint-seconds per hour: every active checkpoint counts while in service (its
    period), up to `until` (now)."""
    for (since_s, until_s), count in Counter(periods).items():
        begin = series.start if since_s is None else max(series.start, since_s)
        end = until if until_s is None else min(until, until_s)
        if end <= begin:
            continue
        adder = SegmentAdder(series.start, series.hours)
        adder.add(begin, min(end, series.start + series.hours * HOUR))
        seconds = [0.0] * series.hours
        adder.into(seconds)
        for k, value in enumerate(seconds):
            series.checkpoint_s[k] += count * value


# --- buckets ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    end: datetime
    label: str
    first_hour: int  # index into the HourSeries
    last_hour: int  # exclusive


def hour_buckets(start: datetime, hours: int) -> tuple[Bucket, ...]:
    return _hour_buckets(start.astimezone(UTC), hours)


# remembered: a dashboard asks for the same window again and again (keys are UTC, as
# equal times in other zones would compare equal but give other labels)
@functools.lru_cache(maxsize=64)
def _hour_buckets(start: datetime, hours: int) -> tuple[Bucket, ...]:
    return tuple(
        Bucket(
            start + timedelta(hours=k),
            start + timedelta(hours=k + 1),
            (start + timedelta(hours=k)).isoformat().replace("+00:00", "Z"),
            k,
            k + 1,
        )
        for k in range(hours)
    )


def day_buckets(start: datetime, hours: int, timezone: str) -> tuple[Bucket, ...]:
    """Group the window's hours by the local date at which each hour starts."""
    return _day_buckets(start.astimezone(UTC), hours, timezone)


@functools.lru_cache(maxsize=64)
def _day_buckets(start: datetime, hours: int, timezone: str) -> tuple[Bucket, ...]:
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
    return tuple(buckets)


# --- figures ---------------------------------------------------------------------------
def ratio(numerator: float, denominator: float) -> float | None:
    """None when there is nothing to measure: no passages is not 0 % nor 100 %."""
    if denominator <= 0:
        return None
    return round(numerator / denominator, 6)


TOTALS = (*ROLLUP_COUNTERS, "staffed_s", "online_s", "checkpoint_s", "alerts_opened")
Totals = tuple[float, ...]  # one value per name of TOTALS (the counters are ints)
NO_TOTALS: Totals = (0,) * len(TOTALS)
_counters_of = operator.itemgetter(*ROLLUP_COUNTERS)


def hour_totals(series: HourSeries) -> list[Totals]:
    """The series as one flat tuple per hour: cheap to keep, add up and compare."""
    return [
        (*_counters_of(counters), staffed, online, cp_time, alerts)
        for counters, staffed, online, cp_time, alerts in zip(
            series.counters,
            series.staffed_s,
            series.online_s,
            series.checkpoint_s,
            series.alerts_opened,
            strict=True,
        )
    ]


def add_totals(rows: Sequence[Totals]) -> Totals:
    # every value is a whole number (seconds, counts), so the order of the sums is exact
    return tuple(map(sum, zip(*rows, strict=True))) if rows else NO_TOTALS


def figures_of(totals: Totals) -> dict[str, Any]:
    """The published figures of summed hours."""
    sums = dict(zip(TOTALS, totals, strict=True))
    persons = sums["persons_in"] + sums["persons_out"]
    vehicles = sums["vehicles_in"] + sums["vehicles_out"]
    staffed, online, cp_time = sums["staffed_s"], sums["online_s"], sums["checkpoint_s"]
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
        "alerts_opened": sums["alerts_opened"],
        "checkpoint_minutes": round(cp_time / 60, 2),
        "staffed_minutes": round(staffed / 60, 2),
        "online_minutes": round(online / 60, 2),
        "temperature_coverage": ratio(sums["screened_persons"], persons),
        "registration_coverage": ratio(sums["registered"], sums["passages"]),
        "staffing_coverage": ratio(staffed, cp_time),
        "device_uptime": ratio(online, cp_time),
    }


def figures(series: HourSeries, first: int, last: int) -> dict[str, Any]:
    """The published figures of hours [first, last) of the series."""
    return figures_of(add_totals(hour_totals(series)[first:last]))


def bucket_figures_of(rows: Sequence[Totals], bucket: Bucket) -> dict[str, Any]:
    out = figures_of(add_totals(rows[bucket.first_hour : bucket.last_hour]))
    out.update(start=bucket.start, end=bucket.end, label=bucket.label)
    return out


def bucket_figures(series: HourSeries, buckets: Sequence[Bucket]) -> list[dict[str, Any]]:
    rows = hour_totals(series)
    return [bucket_figures_of(rows, bucket) for bucket in buckets]
