"""The screening-quality pass of the timed rules: lanes with readings stamped in the
last few minutes are judged again (at most once a minute each) over their latest
plausible readings up to now; the verdict is kept in `screening_quality` for the board,
and a suspect lane raises one `screening_suspect` alert (resolved by people, not by the
next verdict). Every read goes through an index (the lanes' own)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, exists, func, literal, select, union_all

from services.alerts.screening_quality import (
    LaneReading,
    ScreeningThresholds,
    judge,
    suspect_finding,
)
from services.core.enums import Direction
from services.core.roster_report import aware
from services.core.tables import (
    checkpoint_t,
    dialect_insert,
    passage_t,
    reading_t,
    screening_quality_t,
)

RECENT = timedelta(minutes=5)  # lanes with readings stamped this recently are judged
REJUDGE = timedelta(seconds=60)  # ... unless judged this recently


def recent_lanes(now: datetime) -> Any:
    """The lanes (checkpoint, direction) with a reading stamped within RECENT up to now:
    one probe of ix_reading_cp_dir_ts per lane (EXISTS stops at the first entry), not a
    read of every recent reading, which under a flood is hundreds of thousands."""
    parts = [
        select(checkpoint_t.c.id, literal(direction.value)).where(
            exists().where(
                reading_t.c.checkpoint_id == checkpoint_t.c.id,
                reading_t.c.direction == direction.value,
                reading_t.c.ts > now - RECENT,
                reading_t.c.ts <= now,
            )
        )
        for direction in Direction
    ]
    return union_all(*parts)


def lanes_due(conn: Connection, now: datetime) -> list[tuple[str, str]]:
    recent = {(cp, direction) for cp, direction in conn.execute(recent_lanes(now))}
    fresh = {
        (r.checkpoint_id, r.direction)
        for r in conn.execute(
            select(screening_quality_t.c.checkpoint_id, screening_quality_t.c.direction).where(
                screening_quality_t.c.evaluated_at > now - REJUDGE
            )
        )
    }
    return sorted(recent - fresh)


def lane_readings(
    conn: Connection,
    cp_id: str,
    direction: str,
    now: datetime,
    t: ScreeningThresholds,
    match_after: timedelta,
) -> list[LaneReading]:
    rows = conn.execute(
        select(
            reading_t.c.id,
            reading_t.c.ts,
            reading_t.c.temp_c,
            reading_t.c.passage_id,
            reading_t.c.source,
            reading_t.c.received_at,
        )
        .where(
            reading_t.c.checkpoint_id == cp_id,
            reading_t.c.direction == direction,
            reading_t.c.implausible.is_(False),
            reading_t.c.ts <= now,
        )
        .order_by(reading_t.c.ts.desc(), reading_t.c.id.desc())
        .limit(t.window)
    ).all()
    out = []
    for r in reversed(rows):
        matched: bool | None = True
        if r.passage_id is None and r.source != "entry":
            matched = None if aware(r.received_at) > now - match_after else False
        out.append(LaneReading(r.id, aware(r.ts), r.temp_c, matched))
    return out


def most_passages_per_reading(
    conn: Connection, cp_id: str, direction: str, readings: list[LaneReading], slack: timedelta
) -> int:
    """The most passages of the lane one of these readings screened (the lane's index,
    over the readings' time span widened by the screening window)."""
    if not readings:
        return 0
    counts = conn.execute(
        select(func.count())
        .where(
            passage_t.c.checkpoint_id == cp_id,
            passage_t.c.direction == direction,
            passage_t.c.ts >= readings[0].ts - slack,
            passage_t.c.ts <= readings[-1].ts + slack,
            passage_t.c.reading_id.in_([r.id for r in readings]),
        )
        .group_by(passage_t.c.reading_id)
    ).scalars()
    return max(counts, default=0)


def screening_pass(
    conn: Connection,
    now: datetime,
    t: ScreeningThresholds,
    match_after: timedelta,
    raise_alert: Any,
) -> list[int]:
    """Judge the lanes due; raise an alert per newly suspect lane. The alert ids opened."""
    lanes = lanes_due(conn, now)
    if not lanes:
        return []
    sites = {
        r.id: r.site_id for r in conn.execute(select(checkpoint_t.c.id, checkpoint_t.c.site_id))
    }
    opened: list[int] = []
    for cp_id, direction in lanes:
        readings = lane_readings(conn, cp_id, direction, now, t, match_after)
        shared = most_passages_per_reading(conn, cp_id, direction, readings, match_after)
        verdict = judge(readings, t, shared)
        statement = dialect_insert(conn, screening_quality_t).values(
            checkpoint_id=cp_id,
            direction=direction,
            status=verdict.status,
            readings=verdict.readings,
            evaluated_at=now,
            evidence={"checks": verdict.checks},
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["checkpoint_id", "direction"],
                set_={
                    "status": statement.excluded.status,
                    "readings": statement.excluded.readings,
                    "evaluated_at": statement.excluded.evaluated_at,
                    "evidence": statement.excluded.evidence,
                },
            )
        )
        finding = suspect_finding(cp_id, sites.get(cp_id, ""), direction, verdict, readings)
        if finding is not None:
            raised = raise_alert(conn, finding, now, repeat=False)
            if raised is not None and raised.created:
                opened.append(raised.alert_id)
    return opened
