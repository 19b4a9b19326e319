"""Staffing against requirements, as pure functions over plain data: who was on duty
when (from duty events), which requirement applies at a moment of the local day, what
is missing from it, and the timeline of a checkpoint's staffing (met or not, and since
when). The alerts' roster rules, the roster coverage figure and the daily report's
hours all start from here, so they count the same way.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DAY_MINUTES = 1440


@dataclass(frozen=True, slots=True)
class DutyFact:
    """One counted duty event (unknown staff ids are left out before this)."""

    checkpoint_id: str
    staff_id: str
    ts: datetime
    on: bool


@dataclass(frozen=True, slots=True)
class Requirement:
    label: str
    start_minute: int  # local minute of the day
    end_minute: int  # at or before start: runs past midnight
    min_on_duty: int
    roles: tuple[str, ...] = ()

    def covers(self, minute: int) -> bool:
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute


# The article's night rule (police, medical and community staff together at night) and
# "never unstaffed" by day. The day rule starts at 06:00, where the night rule ends, so
# no hour of the day is without a rule.
DEFAULT_REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("night", 23 * 60, 6 * 60, 3, ("police", "medical", "community")),
    Requirement("day", 6 * 60, 23 * 60, 1, ()),
)


@dataclass(frozen=True, slots=True)
class Missing:
    """What a checkpoint lacks against the requirements in force: people and roles."""

    requirement: str
    need: int
    on_duty: int
    roles: tuple[str, ...] = ()

    @property
    def short(self) -> int:
        return max(self.need - self.on_duty, 0)

    def describe(self) -> str:
        parts = []
        if self.short:
            parts.append(f"{self.on_duty} of {self.need} on duty")
        if self.roles:
            parts.append("no " + ", ".join(self.roles))
        return "; ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return {
            "requirement": self.requirement,
            "need": self.need,
            "on_duty": self.on_duty,
            "short": self.short,
            "missing_roles": list(self.roles),
        }


def local_minute(moment: datetime, tz: ZoneInfo) -> int:
    local = moment.astimezone(tz)
    return local.hour * 60 + local.minute


def requirements_at(
    requirements: Sequence[Requirement], moment: datetime, tz: ZoneInfo
) -> list[Requirement]:
    minute = local_minute(moment, tz)
    return [r for r in requirements if r.covers(minute)]


def missing(
    requirements: Iterable[Requirement], roles_on_duty: Sequence[str], min_staff: int = 0
) -> Missing | None:
    """What the people on duty (one role each) lack against the requirements in force
    and the checkpoint's own `min_staff`. Each listed role needs its own person."""
    reqs = list(requirements)
    need = max([min_staff, *(r.min_on_duty for r in reqs)])
    wanted: Counter[str] = Counter()
    for r in reqs:
        wanted |= Counter(r.roles)  # the largest demand per role among them
    short_roles = wanted - Counter(roles_on_duty)
    if len(roles_on_duty) >= need and not short_roles:
        return None
    label = "+".join(r.label for r in reqs) or "min_staff"
    return Missing(label, need, len(roles_on_duty), tuple(sorted(short_roles.elements())))


def on_duty_intervals(
    facts: Iterable[DutyFact], start: datetime, end: datetime
) -> dict[tuple[str, str], list[tuple[datetime, datetime]]]:
    """(checkpoint, staff) -> the periods on duty within [start, end). An `off` with no
    `on` before it in the facts counts from `start` (the `on` lies before the window);
    an `on` never followed by `off` lasts to `end`. Repeated `on`s are one period."""
    by_key: dict[tuple[str, str], list[DutyFact]] = {}
    for fact in facts:
        by_key.setdefault((fact.checkpoint_id, fact.staff_id), []).append(fact)
    periods: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    for key, events in by_key.items():
        events.sort(key=lambda f: (f.ts, f.on))
        since: datetime | None = None
        first = True
        for fact in events:
            if fact.on and since is None:
                since = fact.ts
            elif not fact.on:
                begun = since if since is not None else (start if first else None)
                if begun is not None:
                    _add(periods, key, begun, fact.ts, start, end)
                since = None
            first = False
        if since is not None:
            _add(periods, key, since, end, start, end)
    return periods


def _add(
    periods: dict[tuple[str, str], list[tuple[datetime, datetime]]],
    key: tuple[str, str],
    a: datetime,
    b: datetime,
    start: datetime,
    end: datetime,
) -> None:
    a, b = max(a, start), min(b, end)
    if a < b:
        periods.setdefault(key, []).append((a, b))


@dataclass(frozen=True, slots=True)
class Segment:
    start: datetime
    end: datetime
    on_duty: tuple[str, ...]  # staff ids
    missing: Missing | None
    governed: bool  # a requirement (or min_staff) applies

    @property
    def met(self) -> bool:
        return self.missing is None


@dataclass(slots=True)
class CheckpointStaffing:
    checkpoint_id: str
    requirements: Sequence[Requirement]
    min_staff: int = 0
    periods: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)


def _requirement_edges(
    reqs: Sequence[Requirement], start: datetime, end: datetime, tz: ZoneInfo
) -> set[datetime]:
    edges: set[datetime] = set()
    day: date = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
        for r in reqs:
            for minute in (r.start_minute, r.end_minute):
                moment = (midnight + timedelta(minutes=minute)).astimezone(start.tzinfo)
                if start < moment < end:
                    edges.add(moment)
        day += timedelta(days=1)
    return edges


def timeline(
    cp: CheckpointStaffing, roles: dict[str, str], start: datetime, end: datetime, tz: ZoneInfo
) -> list[Segment]:
    """The checkpoint's staffing over [start, end) as segments of constant state."""
    edges = {start, end} | _requirement_edges(cp.requirements, start, end, tz)
    for periods in cp.periods.values():
        for a, b in periods:
            edges.update(t for t in (a, b) if start < t < end)
    points = sorted(edges)
    segments: list[Segment] = []
    for a, b in itertools.pairwise(points):
        present = tuple(
            sorted(s for s, ps in cp.periods.items() if any(p0 <= a < p1 for p0, p1 in ps))
        )
        reqs = requirements_at(cp.requirements, a, tz)
        governed = bool(reqs) or cp.min_staff > 0
        lack = (
            missing(reqs, [roles.get(s, "") for s in present], cp.min_staff) if governed else None
        )
        segments.append(Segment(a, b, present, lack, governed))
    return segments


def unmet_since(segments: Sequence[Segment]) -> datetime | None:
    """When the unmet state at the end of the timeline began (None: met at the end)."""
    since: datetime | None = None
    for segment in reversed(segments):
        if segment.met:
            break
        since = segment.start
    return since


def minutes_meeting(segments: Iterable[Segment]) -> tuple[float, float]:
    """(minutes a requirement applied and was met, minutes a requirement applied)."""
    met = governed = 0.0
    for s in segments:
        if not s.governed:
            continue
        span = (s.end - s.start).total_seconds() / 60
        governed += span
        met += span if s.met else 0.0
    return met, governed


def minutes_anyone(segments: Iterable[Segment]) -> float:
    """Minutes with at least one person on duty: the old "someone there" staffing."""
    return sum((s.end - s.start).total_seconds() / 60 for s in segments if s.on_duty)
