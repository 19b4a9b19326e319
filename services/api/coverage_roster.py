"""Staffing coverage by requirement: per checkpoint, the minutes a staffing requirement
(or the checkpoint's `min_staff`) applied and the minutes it was met, beside the old
"someone there" minutes for comparison. Counted from duty events by the same timeline
as the roster alerts (services/core/staffing.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import Connection

from services.core.roster_report import staffing_timelines
from services.core.staffing import minutes_anyone, minutes_meeting


class RosterCoverage(BaseModel):
    checkpoint_id: str
    required_minutes: float
    met_minutes: float
    coverage_by_requirement: float | None  # met / required; None when nothing applied
    anyone_minutes: float  # the old definition: at least one person on duty
    window_minutes: float


class RosterCoverageReport(BaseModel):
    start: datetime
    end: datetime
    checkpoints: list[RosterCoverage]
    required_minutes: float
    met_minutes: float
    coverage_by_requirement: float | None


def roster_coverage(
    conn: Connection, start: datetime, end: datetime, tz: ZoneInfo, checkpoint_id: str | None
) -> RosterCoverageReport:
    window = (end - start).total_seconds() / 60
    rows: list[RosterCoverage] = []
    for cp_id, segments in sorted(staffing_timelines(conn, start, end, tz).items()):
        if checkpoint_id is not None and cp_id != checkpoint_id:
            continue
        met, required = minutes_meeting(segments)
        rows.append(
            RosterCoverage(
                checkpoint_id=cp_id,
                required_minutes=round(required, 3),
                met_minutes=round(met, 3),
                coverage_by_requirement=round(met / required, 6) if required else None,
                anyone_minutes=round(minutes_anyone(segments), 3),
                window_minutes=round(window, 3),
            )
        )
    met = sum(r.met_minutes for r in rows)
    required = sum(r.required_minutes for r in rows)
    return RosterCoverageReport(
        start=start,
        end=end,
        checkpoints=rows,
        required_minutes=round(required, 3),
        met_minutes=round(met, 3),
        coverage_by_requirement=round(met / required, 6) if required else None,
    )
