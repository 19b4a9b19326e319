"""Screening as the simulator plays it, judged the way the alert service judges it:
the readings of each lane (checkpoint, direction) of a plan, and the count of pro-forma
verdicts over them (services/alerts/screening_quality.py). A pro-forma checkpoint's
handheld shows the same temperature whoever passes (or nobody does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.alerts.screening_quality import (
    SUSPECT,
    LaneReading,
    ScreeningThresholds,
    judge,
    longest_run,
)
from services.core.protocol import EntryMessage, ReadingMessage

from .timeline import Item
from .traffic import PRO_FORMA_TEMP as PRO_FORMA_TEMP  # what a waved thermometer shows

Lanes = dict[tuple[str, str], list[LaneReading]]


def lanes_of(items: Iterable[Item], plausible: tuple[float, float] = (30.0, 45.0)) -> Lanes:
    """Every plausible temperature of a plan, per lane in time order: the gate
    terminals' own (in the entry) and the handhelds' (all matched: an honest plan
    takes every reading at a passage)."""
    lanes: Lanes = {}
    n = 0
    for item in items:
        message = item.message
        temp: float | None = None
        direction = ""
        if isinstance(message, EntryMessage | ReadingMessage) and message.temp_c is not None:
            temp, direction = message.temp_c, message.direction.value
        if temp is None or not plausible[0] <= temp <= plausible[1] or item.duplicate:
            continue
        n += 1
        at = datetime.fromtimestamp(item.t, UTC)
        lanes.setdefault((item.checkpoint_id, direction), []).append(LaneReading(n, at, temp, True))
    return lanes


@dataclass(slots=True)
class FalsePositives:
    lanes: int = 0
    readings: int = 0
    evaluations: int = 0  # one verdict per reading, over the readings before it
    suspect_evaluations: int = 0
    suspect_lanes: set[tuple[str, str]] = field(default_factory=set)
    longest_run: int = 0  # the extremes honest lanes reached, against the thresholds
    smallest_spread_c: float | None = None
    shortest_interval_s: float | None = None


def count_suspect(lanes: Lanes, t: ScreeningThresholds) -> FalsePositives:
    """Judge every lane after every reading, as the timer would at its busiest."""
    out = FalsePositives(lanes=len(lanes))
    for lane, readings in lanes.items():
        out.readings += len(readings)
        out.longest_run = max(out.longest_run, longest_run([r.temp_c for r in readings]))
        for end in range(1, len(readings) + 1):
            verdict = judge(readings[max(0, end - t.window) : end], t)
            out.evaluations += 1
            for check in verdict.checks:
                if check["check"] == "spread_c":
                    out.smallest_spread_c = _least(out.smallest_spread_c, check["statistic"])
                if check["check"] == "interval_s":
                    out.shortest_interval_s = _least(out.shortest_interval_s, check["statistic"])
            if verdict.status == SUSPECT:
                out.suspect_evaluations += 1
                out.suspect_lanes.add(lane)
    return out


def _least(current: float | None, value: float) -> float:
    return value if current is None else min(current, value)
