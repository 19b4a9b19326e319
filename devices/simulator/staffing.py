"""Duty shifts: three shifts a day at every checkpoint, handovers, and the gaps between.

Each staff member's time on duty is an interval; duty messages are its ends, and the
staffing gaps reported in the manifest are computed from those same intervals, so they
agree with what ingest will reconstruct from the messages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.core.demo import DemoCheckpoint

SHIFT_HOURS = (0, 8, 16)  # local shift starts
EARLY_S = (60.0, 600.0)  # the incoming shift arrives this early
LATE_OFF_S = (0.0, 300.0)  # the outgoing shift leaves this late
GAP_LATENESS_S = (600.0, 3600.0)  # how late the next shift is when there is a gap


@dataclass(slots=True)
class DutyInterval:
    staff_id: str
    on: float  # epoch seconds
    off: float


@dataclass(frozen=True, slots=True)
class DutyChange:
    t: float
    staff_id: str
    action: str  # on | off


@dataclass(frozen=True, slots=True)
class Gap:
    """Fewer than `min_staff` on duty from `start` to `end` (None: still open at the end)."""

    start: float
    end: float | None
    fewest_on_duty: int


def shift_staff(checkpoint: DemoCheckpoint, shift: int) -> list[str]:
    """The demo community's staff ids: `st-NNN-k`, `min_staff` of them per shift."""
    per_shift = max(checkpoint.min_staff, 1)
    number = checkpoint.id[3:]
    return [f"st-{number}-{shift * per_shift + k + 1}" for k in range(per_shift)]


def shift_starts(start: float, end: float, timezone: str) -> list[tuple[float, int]]:
    """(epoch seconds, shift number) of every shift that overlaps [start, end]."""
    zone = ZoneInfo(timezone)
    day = datetime.fromtimestamp(start, zone).date() - timedelta(days=1)
    result: list[tuple[float, int]] = []
    while True:
        for shift, hour in enumerate(SHIFT_HOURS):
            t = datetime(day.year, day.month, day.day, hour, tzinfo=zone).timestamp()
            if t > end:
                return result
            result.append((t, shift))
        day += timedelta(days=1)


class DutyRoster:
    """Who is on duty at one checkpoint, when."""

    def __init__(self, checkpoint: DemoCheckpoint, start: float, end: float) -> None:
        self.checkpoint = checkpoint
        self.start = start
        self.end = end
        self.intervals: list[DutyInterval] = []

    @classmethod
    def plan(
        cls,
        checkpoint: DemoCheckpoint,
        start: float,
        end: float,
        timezone: str,
        rng: random.Random,
        gap_rate: float,
    ) -> DutyRoster:
        roster = cls(checkpoint, start, end)
        starts = shift_starts(start, end, timezone)
        for i, (t, shift) in enumerate(starts):
            next_t = starts[i + 1][0] if i + 1 < len(starts) else t + 8 * 3600
            late = rng.random() < gap_rate and start < t < end
            staff = shift_staff(checkpoint, shift)
            late_member = rng.randrange(len(staff))
            for k, staff_id in enumerate(staff):
                on = t - rng.uniform(*EARLY_S)
                if late and k == late_member:
                    on = t + rng.uniform(*GAP_LATENESS_S)
                off = next_t + rng.uniform(*LATE_OFF_S)
                if off > start and on < end:
                    roster.intervals.append(DutyInterval(staff_id, on, off))
        return roster

    def walk_out(self, t0: float, t1: float) -> None:
        """Everyone leaves at t0 and comes back at t1 (a forced staffing gap)."""
        kept: list[DutyInterval] = []
        for interval in self.intervals:
            if interval.off <= t0 or interval.on >= t1:
                kept.append(interval)
                continue
            if interval.on < t0:
                kept.append(DutyInterval(interval.staff_id, interval.on, t0))
            if interval.off > t1:
                kept.append(DutyInterval(interval.staff_id, t1, interval.off))
        self.intervals = kept

    def changes(self) -> list[DutyChange]:
        """The duty messages: `on` at the start of the run for those already on duty."""
        result: list[DutyChange] = []
        for interval in self.intervals:
            if interval.on < self.end and interval.off > self.start:
                result.append(DutyChange(max(interval.on, self.start), interval.staff_id, "on"))
            if self.start <= interval.off < self.end:
                result.append(DutyChange(interval.off, interval.staff_id, "off"))
        # at the same instant, arrivals first: a handover is not a gap
        result.sort(key=lambda c: (c.t, c.action != "on", c.staff_id))
        return result

    def on_duty(self, t: float) -> list[str]:
        return sorted(i.staff_id for i in self.intervals if i.on <= t < i.off)

    def gaps(self) -> list[Gap]:
        """Intervals within the run when fewer than `min_staff` were on duty."""
        need = max(self.checkpoint.min_staff, 1)
        changes = self.changes()
        count, fewest = 0, 0
        open_at: float | None = self.start  # nobody is on duty before the first message
        result: list[Gap] = []
        i = 0
        while i < len(changes):
            t = changes[i].t
            # everything at the same instant applies together before the count is judged
            while i < len(changes) and changes[i].t == t:
                count += 1 if changes[i].action == "on" else -1
                i += 1
            if count < need:
                if open_at is None:
                    open_at, fewest = t, count
                else:
                    fewest = min(fewest, count)
            elif open_at is not None:
                if t > open_at:
                    result.append(Gap(open_at, t, fewest))
                open_at = None
        if open_at is not None:
            result.append(Gap(open_at, None, fewest))
        return result
