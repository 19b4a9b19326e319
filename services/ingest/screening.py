"""Linking readings to the passages they screened, across batches and processes.

The pure matching is `matching.Matcher`; this module is its database side: the open
passages and readings of a lane, read a few at a time outwards from a seeker's time
through the partial indexes on open rows (`ix_passage_open_lane`, `ix_reading_open_lane`),
so a batch reads a bounded number of rows per message however many share its window;
plus the readings and passages named by `entry_msg_id`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, Connection, String, select, text

from services.core.db import UTCDateTime
from services.core.enums import PassageKind, Screening
from services.core.queries import join_pairs
from services.core.tables import OPEN_PASSAGE, OPEN_READING, passage_t, reading_t
from services.ingest.bulk import sqlite_value, update_by_id
from services.ingest.matching import Item, MatchCost, Matcher, Seek
from services.ingest.rules import OpenPassage, OpenReading, ScreeningMatch, link_named

SCREENING_LOCK_KEY = 0x43504D53  # 'CPMS': serialises screening across ingest processes

_SQLITE_SEEK = """
SELECT w.key AS seek, t.id, t.checkpoint_id, t.direction, t.ts, t.{extra}
FROM json_each(:seeks) AS w JOIN {table} AS t ON t.id IN (
  SELECT o.id FROM {table} AS o
  WHERE o.checkpoint_id = json_extract(w.value, '$[0]')
    AND o.direction = json_extract(w.value, '$[1]')
    AND {open}
    AND (o.ts, o.id) {cmp} (json_extract(w.value, '$[2]'), json_extract(w.value, '$[3]'))
    AND o.ts {bound_cmp} json_extract(w.value, '$[4]')
  ORDER BY o.ts {order}, o.id {order} LIMIT :limit)
"""
_POSTGRES_SEEK = """
SELECT w.seek - 1 AS seek, t.id, t.checkpoint_id, t.direction, t.ts, t.{extra}
FROM unnest(CAST(:cps AS text[]), CAST(:dirs AS text[]), CAST(:tss AS timestamptz[]),
            CAST(:ids AS bigint[]), CAST(:bounds AS timestamptz[]))
     WITH ORDINALITY AS w(cp, dir, ts, id, bound, seek)
CROSS JOIN LATERAL (
  SELECT o.* FROM {table} AS o
  WHERE o.checkpoint_id = w.cp AND o.direction = w.dir AND {open}
    AND (o.ts, o.id) {cmp} (w.ts, w.id) AND o.ts {bound_cmp} w.bound
  ORDER BY o.ts {order}, o.id {order} LIMIT :limit) AS t
"""


class OpenRows:
    """Open passages (or readings) of the database as a `matching.PartnerSource`: one
    statement for any number of seeks, each an index range scan with a LIMIT."""

    def __init__(self, conn: Connection, passages: bool) -> None:
        self.conn = conn
        self.passages = passages
        self.postgres = conn.dialect.name == "postgresql"
        self._statements: dict[bool, Any] = {}

    def _statement(self, ascending: bool) -> Any:
        if ascending not in self._statements:
            sql = (_POSTGRES_SEEK if self.postgres else _SQLITE_SEEK).format(
                table=passage_t.name if self.passages else reading_t.name,
                extra="msg_id" if self.passages else "entry_msg_id",
                open=(OPEN_PASSAGE if self.passages else OPEN_READING),
                cmp=">=" if ascending else "<=",
                bound_cmp="<=" if ascending else ">=",
                order="ASC" if ascending else "DESC",
            )
            self._statements[ascending] = text(sql).columns(
                seek=BigInteger(),
                id=BigInteger(),
                checkpoint_id=String(),
                direction=String(),
                ts=UTCDateTime(),
            )
        return self._statements[ascending]

    def _params(self, seeks: Sequence[Seek], limit: int) -> dict[str, Any]:
        if self.postgres:
            return {
                "cps": [s.lane[0] for s in seeks],
                "dirs": [s.lane[1] for s in seeks],
                "tss": [s.start[0] for s in seeks],
                "ids": [s.start[1] for s in seeks],
                "bounds": [s.bound for s in seeks],
                "limit": limit,
            }
        rows = [
            [*s.lane, sqlite_value(s.start[0]), s.start[1], sqlite_value(s.bound)] for s in seeks
        ]
        return {"seeks": json.dumps(rows), "limit": limit}

    def read(self, seeks: Sequence[Seek], limit: int) -> list[list[Item]]:
        out: list[list[Item]] = [[] for _ in seeks]
        make = OpenPassage if self.passages else OpenReading
        for direction in (True, False):
            picked = [n for n, s in enumerate(seeks) if s.ascending is direction]
            if not picked:
                continue
            params = self._params([seeks[n] for n in picked], limit)
            for row in self.conn.execute(self._statement(direction), params):
                out[picked[row[0]]].append(make(*row[1:]))
        for seek, rows in zip(seeks, out, strict=True):
            rows.sort(key=lambda item: (item.ts, item.id), reverse=not seek.ascending)
        return out


def _named_open_passages(conn: Connection, new_readings: list[OpenReading]) -> list[OpenPassage]:
    """The open passages the new readings name (a named entry may lie outside any
    window): an index look-up per name."""
    named = {(r.checkpoint_id, r.entry_msg_id) for r in new_readings if r.entry_msg_id}
    if not named:
        return []
    c = passage_t.c
    query = (
        select(c.id, c.checkpoint_id, c.direction, c.ts, c.msg_id)
        .select_from(join_pairs(conn.dialect.name, passage_t, c.msg_id, named))
        .where(c.kind == PassageKind.PERSON.value, c.screened.is_(False))
    )
    return [OpenPassage(*row) for row in conn.execute(query)]


def _naming_open_readings(conn: Connection, new_passages: list[OpenPassage]) -> list[OpenReading]:
    """The stored open readings that name one of the new passages."""
    if not new_passages:
        return []
    c = reading_t.c
    named = {(p.checkpoint_id, p.msg_id) for p in new_passages}
    query = (
        select(c.id, c.checkpoint_id, c.direction, c.ts, c.entry_msg_id)
        .select_from(join_pairs(conn.dialect.name, reading_t, c.entry_msg_id, named))
        .where(c.passage_id.is_(None), c.implausible.is_(False), c.source == "thermometer")
    )
    return [OpenReading(*row) for row in conn.execute(query)]


def link_screenings(
    conn: Connection,
    new_passages: list[OpenPassage],
    new_readings: list[OpenReading],
    window_s: float,
    cost: MatchCost | None = None,
) -> tuple[list[ScreeningMatch], dict[int, OpenPassage]]:
    """Match, record the links, and return the matches with the passages they screen."""
    if not new_passages and not new_readings:
        return [], {}
    if conn.dialect.name == "postgresql":
        # two ingest processes must not give one reading to two passages
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCREENING_LOCK_KEY})")
    passages = {p.id: p for p in new_passages}
    passages.update((p.id, p) for p in _named_open_passages(conn, new_readings))
    readings = _naming_open_readings(conn, new_passages) + new_readings
    matches = link_named(list(passages.values()), readings)
    matcher = Matcher(
        OpenRows(conn, passages=True),
        OpenRows(conn, passages=False),
        timedelta(seconds=window_s),
        {m.passage_id for m in matches},
        {m.reading_id for m in matches},
    )
    unnamed = [r for r in new_readings if r.entry_msg_id is None]
    for passage_id, reading_id in matcher.match(unnamed, new_passages):
        matches.append(ScreeningMatch(passage_id, reading_id, Screening.TIME_WINDOW))
    passages.update((p.id, p) for p in matcher.loaded_passages())
    if cost is not None:
        cost.reads += matcher.cost.reads
        cost.rows += matcher.cost.rows
        cost.steps += matcher.cost.steps
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
