"""Linking readings to the passages they screened, across batches and processes.

The pure matching is `rules.match_screenings`; this module finds its candidates: the
new open passages and readings of a batch, plus those already stored in the same lanes
(checkpoint and direction) within the window, or named by `entry_msg_id`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, tuple_

from services.core.enums import PassageKind
from services.core.models import Passage, Reading
from services.core.utils import table_of
from services.ingest.bulk import update_by_id
from services.ingest.rules import OpenPassage, OpenReading, ScreeningMatch, match_screenings

SCREENING_LOCK_KEY = 0x43504D53  # 'CPMS': serialises screening across ingest processes

passage_t = table_of(Passage)
reading_t = table_of(Reading)
Lane = tuple[str, str]


def lane_windows(
    items: Iterable[OpenPassage | OpenReading], window: timedelta
) -> dict[Lane, tuple[datetime, datetime]]:
    """Per checkpoint and direction, the span the items' partners must fall in."""
    spans: dict[Lane, tuple[datetime, datetime]] = {}
    for item in items:
        lane = (item.checkpoint_id, item.direction)
        lo, hi = spans.get(lane, (item.ts, item.ts))
        spans[lane] = (min(lo, item.ts), max(hi, item.ts))
    return {lane: (lo - window, hi + window) for lane, (lo, hi) in spans.items()}


def _in_lanes(table: Any, lanes: dict[Lane, tuple[datetime, datetime]]) -> Any:
    return or_(
        *(
            and_(
                table.c.checkpoint_id == cp,
                table.c.direction == direction,
                table.c.ts.between(lo, hi),
            )
            for (cp, direction), (lo, hi) in lanes.items()
        )
    )


def _stored_open_passages(
    conn: Connection, new_readings: list[OpenReading], window: timedelta
) -> list[OpenPassage]:
    unnamed = [r for r in new_readings if r.entry_msg_id is None]
    named = {(r.checkpoint_id, r.entry_msg_id) for r in new_readings if r.entry_msg_id}
    wanted = []
    if unnamed:
        wanted.append(_in_lanes(passage_t, lane_windows(unnamed, window)))
    if named:  # a named entry may lie outside any window
        wanted.append(tuple_(passage_t.c.checkpoint_id, passage_t.c.msg_id).in_(named))
    if not wanted:
        return []
    c = passage_t.c
    query = select(c.id, c.checkpoint_id, c.direction, c.ts, c.msg_id).where(
        c.kind == PassageKind.PERSON.value, c.screened.is_(False), or_(*wanted)
    )
    return [OpenPassage(*row) for row in conn.execute(query)]


def _stored_open_readings(
    conn: Connection, new_passages: list[OpenPassage], window: timedelta
) -> list[OpenReading]:
    if not new_passages:
        return []
    c = reading_t.c
    named = {(p.checkpoint_id, p.msg_id) for p in new_passages}
    query = select(c.id, c.checkpoint_id, c.direction, c.ts, c.entry_msg_id).where(
        c.passage_id.is_(None),
        c.implausible.is_(False),
        c.source == "thermometer",
        or_(
            and_(
                c.entry_msg_id.is_(None), _in_lanes(reading_t, lane_windows(new_passages, window))
            ),
            tuple_(c.checkpoint_id, c.entry_msg_id).in_(named),
        ),
    )
    return [OpenReading(*row) for row in conn.execute(query)]


def link_screenings(
    conn: Connection,
    new_passages: list[OpenPassage],
    new_readings: list[OpenReading],
    window_s: float,
) -> tuple[list[ScreeningMatch], dict[int, OpenPassage]]:
    """Match, record the links, and return the matches with the passages they screen."""
    if not new_passages and not new_readings:
        return [], {}
    if conn.dialect.name == "postgresql":
        # two ingest processes must not give one reading to two passages
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCREENING_LOCK_KEY})")
    window = timedelta(seconds=window_s)
    passages = {p.id: p for p in new_passages}
    passages.update((p.id, p) for p in _stored_open_passages(conn, new_readings, window))
    readings = {r.id: r for r in new_readings}
    readings.update((r.id, r) for r in _stored_open_readings(conn, new_passages, window))
    matches = match_screenings(list(passages.values()), list(readings.values()), window_s)
    update_by_id(
        conn,
        passage_t,
        [
            {
                "id": m.passage_id,
                "screened": True,
                "screening": m.how.value,
                "reading_id": m.reading_id,
            }
            for m in matches
        ],
        only_if="t.screened = false",
    )
    update_by_id(
        conn, reading_t, [{"id": m.reading_id, "passage_id": m.passage_id} for m in matches]
    )
    return matches, passages
