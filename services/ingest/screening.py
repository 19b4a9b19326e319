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
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from services.core.enums import PassageKind, Screening
from services.core.queries import join_pairs
from services.core.tables import OPEN_PASSAGE, OPEN_READING, passage_t, reading_t
from services.ingest.bulk import sqlite_value, update_by_id
from services.ingest.matching import Item, Lane, MatchCost, Matcher, Seek
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


_SPAN = """
SELECT id, checkpoint_id, direction, ts, {extra} FROM {table}
WHERE {lanes} AND {open} AND ts >= {first} AND ts <= {last}
LIMIT {limit}
"""


def _aware(ts: datetime | str) -> datetime:
    """PostgreSQL returns aware timestamps; SQLite naive UTC text."""
    if isinstance(ts, str):
        return datetime.fromisoformat(ts).replace(tzinfo=UTC)
    # the one UTC tzinfo object everywhere: an aware comparison between two tzinfo
    # objects calls utcoffset() on both, ~15x the cost (and matching compares a lot)
    return ts if ts.tzinfo is UTC else ts.astimezone(UTC)


class OpenRows:
    """Open passages (or readings) of the database as a `matching.PartnerSource`: one
    statement for any number of seeks, each an index range scan with a LIMIT."""

    def __init__(self, conn: Connection, passages: bool) -> None:
        self.conn = conn
        self.passages = passages
        self.postgres = conn.dialect.name == "postgresql"
        self._statements: dict[bool, str] = {}

    def _statement(self, ascending: bool) -> str:
        """Driver SQL: these rows are read by the thousand, below SQLAlchemy's per-row
        result processing (PostgreSQL returns aware timestamps; SQLite's text is parsed
        in `read`)."""
        if ascending not in self._statements:
            sql = (_POSTGRES_SEEK if self.postgres else _SQLITE_SEEK).format(
                table=passage_t.name if self.passages else reading_t.name,
                extra="msg_id" if self.passages else "entry_msg_id",
                open=OPEN_PASSAGE if self.passages else OPEN_READING,
                cmp=">=" if ascending else "<=",
                bound_cmp="<=" if ascending else ">=",
                order="ASC" if ascending else "DESC",
            )
            if self.postgres:  # psycopg's parameter style
                for name in ("cps", "dirs", "tss", "ids", "bounds", "limit"):
                    sql = sql.replace(f":{name}", f"%({name})s")
            self._statements[ascending] = sql
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

    def read_span(
        self, lanes: Sequence[Lane], first: datetime, last: datetime, limit: int
    ) -> list[Item] | None:
        checkpoints = sorted({cp for cp, _ in lanes})
        directions = sorted({direction for _, direction in lanes})
        if self.postgres:
            where = "checkpoint_id = ANY(%(cps)s) AND direction = ANY(%(dirs)s)"
            names = {"first": "%(first)s", "last": "%(last)s", "limit": "%(limit)s"}
            params: dict[str, Any] = {"cps": checkpoints, "dirs": directions}
            params.update(first=first, last=last, limit=limit + 1)
        else:
            where = (
                "checkpoint_id IN (SELECT value FROM json_each(:cps))"
                " AND direction IN (SELECT value FROM json_each(:dirs))"
            )
            names = {"first": ":first", "last": ":last", "limit": ":limit"}
            params = {"cps": json.dumps(checkpoints), "dirs": json.dumps(directions)}
            params.update(first=sqlite_value(first), last=sqlite_value(last), limit=limit + 1)
        sql = _SPAN.format(
            table=passage_t.name if self.passages else reading_t.name,
            extra="msg_id" if self.passages else "entry_msg_id",
            lanes=where,
            open=OPEN_PASSAGE if self.passages else OPEN_READING,
            **names,
        )
        rows = self.conn.exec_driver_sql(sql, params).all()
        if len(rows) > limit:
            return None
        make = OpenPassage if self.passages else OpenReading
        wanted = set(lanes)
        return [
            make(id_, cp, direction, _aware(ts), extra)
            for id_, cp, direction, ts, extra in rows
            if (cp, direction) in wanted
        ]

    def read(self, seeks: Sequence[Seek], limit: int) -> list[list[Item]]:
        out: list[list[Item]] = [[] for _ in seeks]
        make = OpenPassage if self.passages else OpenReading
        for direction in (True, False):
            picked = [n for n, s in enumerate(seeks) if s.ascending is direction]
            if not picked:
                continue
            params = self._params([seeks[n] for n in picked], limit)
            result = self.conn.exec_driver_sql(self._statement(direction), params)
            for seek, id_, cp, lane_direction, ts, extra in result:
                out[picked[seek]].append(make(id_, cp, lane_direction, _aware(ts), extra))
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
