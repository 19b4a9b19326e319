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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from services.core.enums import PassageKind, Screening
from services.core.tables import OPEN_PASSAGE, OPEN_READING, passage_t, reading_t
from services.ingest.bulk import run, sqlite_value, update_by_id, utc_stamp
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
        rows = run(self.conn, sql, params)
        if len(rows) > limit:
            return None
        make = OpenPassage if self.passages else OpenReading
        wanted = set(lanes)
        return [
            make(id_, cp, direction, utc_stamp(ts), extra)
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
            result = run(self.conn, self._statement(direction), params)
            for seek, id_, cp, lane_direction, ts, extra in result:
                out[picked[seek]].append(make(id_, cp, lane_direction, utc_stamp(ts), extra))
        for seek, rows in zip(seeks, out, strict=True):
            rows.sort(key=lambda item: (item.ts, item.id), reverse=not seek.ascending)
        return out


_BY_PAIR = {
    "sqlite": "SELECT t.id, t.checkpoint_id, t.direction, t.ts, t.{key} "
    "FROM json_each(?) AS w JOIN {table} AS t ON t.checkpoint_id = "
    "json_extract(w.value, '$[0]') AND t.{key} = json_extract(w.value, '$[1]') WHERE {where}",
    "postgresql": "SELECT t.id, t.checkpoint_id, t.direction, t.ts, t.{key} "
    "FROM unnest(%(cps)s::text[], %(keys)s::text[]) AS w(cp, key) JOIN {table} AS t "
    "ON t.checkpoint_id = w.cp AND t.{key} = w.key WHERE {where}",
}


def _by_pair(
    conn: Connection, table: str, key: str, where: str, pairs: set[tuple[str, str]]
) -> list[Any]:
    """The rows whose (checkpoint_id, `key`) is one of `pairs`: an index look-up per
    pair, in driver SQL whose text does not grow with the batch."""
    ordered = sorted(pairs)
    dialect = conn.dialect.name
    sql = _BY_PAIR[dialect].format(table=table, key=key, where=where)
    if dialect == "postgresql":
        params: Any = {"cps": [p[0] for p in ordered], "keys": [p[1] for p in ordered]}
    else:
        params = (json.dumps(ordered),)
    return run(conn, sql, params)


def _named_open_passages(conn: Connection, new_readings: list[OpenReading]) -> list[OpenPassage]:
    """The open passages the new readings name (a named entry may lie outside any
    window): an index look-up per name."""
    named = {(r.checkpoint_id, name) for r in new_readings if (name := r.entry_msg_id)}
    if not named:
        return []
    where = f"t.kind = '{PassageKind.PERSON.value}' AND t.screened = {_false(conn)}"
    return [
        OpenPassage(id_, cp, direction, utc_stamp(ts), msg_id)
        for id_, cp, direction, ts, msg_id in _by_pair(conn, passage_t.name, "msg_id", where, named)
    ]


def _naming_open_readings(conn: Connection, new_passages: list[OpenPassage]) -> list[OpenReading]:
    """The stored open readings that name one of the new passages."""
    if not new_passages:
        return []
    named = {(p.checkpoint_id, p.msg_id) for p in new_passages}
    where = f"t.passage_id IS NULL AND t.implausible = {_false(conn)} AND t.source = 'thermometer'"
    rows = _by_pair(conn, reading_t.name, "entry_msg_id", where, named)
    return [
        OpenReading(id_, cp, direction, utc_stamp(ts), entry_msg_id)
        for id_, cp, direction, ts, entry_msg_id in rows
    ]


def _false(conn: Connection) -> str:
    return "false" if conn.dialect.name == "postgresql" else "0"


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
        run(conn, f"SELECT pg_advisory_xact_lock({SCREENING_LOCK_KEY})")
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
