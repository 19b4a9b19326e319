"""Linking readings to the passages they screened, across batches and processes.

The pure matching is `rules.match_screenings`; this module finds its candidates: the
new open passages and readings of a batch, plus those already stored in the same lanes
(checkpoint and direction) within the window, or named by `entry_msg_id`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from services.core.enums import PassageKind
from services.core.queries import join_pairs
from services.core.tables import passage_t, reading_t
from services.ingest.bulk import update_by_id
from services.ingest.rules import OpenPassage, OpenReading, ScreeningMatch, match_screenings

SCREENING_LOCK_KEY = 0x43504D53  # 'CPMS': serialises screening across ingest processes

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


def _in_lanes(
    query: Any, table: Any, lanes: dict[Lane, tuple[datetime, datetime]]
) -> tuple[Any, Callable[[Any], bool]]:
    """`query` narrowed to the lanes' checkpoints, directions and overall span, plus the
    exact per-lane test for its rows. One range scan per (checkpoint, direction) on the
    (checkpoint, direction, ts) index, and a query text that does not grow with the batch
    (so it is compiled once); an OR of per-lane ranges costs more to build than to run."""
    c = table.c
    narrowed = query.where(
        c.checkpoint_id.in_(sorted({cp for cp, _ in lanes})),
        c.direction.in_(sorted({direction for _, direction in lanes})),
        c.ts.between(min(lo for lo, _ in lanes.values()), max(hi for _, hi in lanes.values())),
    )

    def in_lane(row: Any) -> bool:
        span = lanes.get((row.checkpoint_id, row.direction))
        return span is not None and span[0] <= row.ts <= span[1]

    return narrowed, in_lane


def _stored_open_passages(
    conn: Connection, new_readings: list[OpenReading], window: timedelta
) -> list[OpenPassage]:
    c = passage_t.c
    open_passages = select(c.id, c.checkpoint_id, c.direction, c.ts, c.msg_id).where(
        c.kind == PassageKind.PERSON.value, c.screened.is_(False)
    )
    unnamed = [r for r in new_readings if r.entry_msg_id is None]
    named = {(r.checkpoint_id, r.entry_msg_id) for r in new_readings if r.entry_msg_id}
    found: dict[int, OpenPassage] = {}
    if unnamed:
        query, in_lane = _in_lanes(open_passages, passage_t, lane_windows(unnamed, window))
        found.update((row.id, OpenPassage(*row)) for row in conn.execute(query) if in_lane(row))
    if named:  # a named entry may lie outside any window
        query = open_passages.select_from(join_pairs(conn.dialect.name, passage_t, c.msg_id, named))
        found.update((row.id, OpenPassage(*row)) for row in conn.execute(query))
    return list(found.values())


def _stored_open_readings(
    conn: Connection, new_passages: list[OpenPassage], window: timedelta
) -> list[OpenReading]:
    if not new_passages:
        return []
    c = reading_t.c
    open_readings = select(c.id, c.checkpoint_id, c.direction, c.ts, c.entry_msg_id).where(
        c.passage_id.is_(None), c.implausible.is_(False), c.source == "thermometer"
    )
    # two disjoint sets (an unnamed reading has no entry_msg_id), each on its own index
    query, in_lane = _in_lanes(
        open_readings.where(c.entry_msg_id.is_(None)),
        reading_t,
        lane_windows(new_passages, window),
    )
    found = [OpenReading(*row) for row in conn.execute(query) if in_lane(row)]
    named = {(p.checkpoint_id, p.msg_id) for p in new_passages}
    naming = join_pairs(conn.dialect.name, reading_t, c.entry_msg_id, named)
    query = open_readings.select_from(naming)
    found.extend(OpenReading(*row) for row in conn.execute(query))
    return found


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
