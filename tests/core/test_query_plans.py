"""The per-batch look-ups of ingest and alerts read indexes, never a whole table.

Each statement the code under test runs is also EXPLAINed on the same connection. On
PostgreSQL sequential scans are priced out (`enable_seqscan = off`), so a scan in the plan
means no index could answer the query; SQLite's planner is asked directly. A full scan
here would cost a batch time in proportion to months of stored passages and readings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import Connection, Engine, event

from services.alerts.event_processor import Processor
from services.core.db import utcnow
from services.core.demo import DemoCommunity
from services.ingest import bulk
from services.ingest.matching import Seek
from services.ingest.parse import Accepted, Inbound, parse_inbound
from services.ingest.rules import OpenPassage, OpenReading
from services.ingest.screening import OpenRows, _named_open_passages, _naming_open_readings
from services.ingest.store import load_registry
from tests.support.env import TEST_SECRET

BIG_TABLES = ("passage", "reading")
driver_cursor = bulk._cursor


@pytest.fixture
def engine_without_statistics(seeded_engine: Engine) -> Engine:
    """The seeded database, minus the statistics `cpmon seed` gathers: the small test
    registry's make a scan the cheaper plan, which at 69,000 people it is not. Without
    them SQLite plans for large tables and shows what it can answer from an index."""
    if seeded_engine.dialect.name == "sqlite":
        with seeded_engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM sqlite_stat1")
        seeded_engine.dispose()  # statistics are read when a connection opens
    return seeded_engine


@contextmanager
def explained(conn: Connection) -> Iterator[list[str]]:
    """Plans of every SELECT run on `conn` inside the block, one text per statement."""
    plans: list[str] = []
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.exec_driver_sql("SET enable_seqscan = off")

    def explain(_conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
            return
        cursor.execute(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement, parameters)
        rows = cursor.fetchall()
        plans.append("\n".join(str(row[0] if postgres else row[-1]) for row in rows))

    class Explaining:
        """A driver cursor that explains each statement first: ingest's batch statements
        run on the driver's cursor (`bulk.run`), below SQLAlchemy's events."""

        def __init__(self, cursor: Any) -> None:
            self.cursor = cursor

        def execute(self, statement: str, parameters: Any = ()) -> Any:
            explain(conn, self.cursor, statement, parameters)
            return self.cursor.execute(statement, parameters)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.cursor, name)

    event.listen(conn, "before_cursor_execute", explain)
    try:
        with patch.object(bulk, "_cursor", lambda c: Explaining(driver_cursor(c))):
            yield plans
    finally:
        event.remove(conn, "before_cursor_execute", explain)


def full_scans(plan: str, tables: tuple[str, ...] = BIG_TABLES) -> list[str]:
    """The plan's lines that read a whole one of `tables` (PostgreSQL, then SQLite)."""
    names = "|".join(tables)
    scan = re.compile(rf"Seq Scan on ({names})\b|^SCAN ({names})\b")
    return [line for line in plan.splitlines() if scan.search(line.strip())]


def test_screening_candidates_come_from_indexes(engine_without_statistics: Engine) -> None:
    now = utcnow()
    passages = [
        OpenPassage(n, f"cp-{1 + n % 20:03d}", ("in", "out")[n % 2], now, f"e{n}")
        for n in range(1, 300)
    ]
    readings = [
        OpenReading(
            n, f"cp-{1 + n % 20:03d}", ("in", "out")[n % 2], now, f"e{n}" if n % 3 else None
        )
        for n in range(1, 300)
    ]
    window = timedelta(seconds=30)
    seeks = [
        Seek((r.checkpoint_id, r.direction), (r.ts, 0), r.ts + window, ascending)
        for r in readings
        for ascending in (True, False)
    ]
    with engine_without_statistics.connect() as conn, explained(conn) as plans:
        _naming_open_readings(conn, passages)
        _named_open_passages(conn, readings)
        OpenRows(conn, passages=True).read(seeks, 4)
        OpenRows(conn, passages=False).read(seeks, 4)
        lanes = sorted({(r.checkpoint_id, r.direction) for r in readings})
        OpenRows(conn, passages=True).read_span(lanes, now - window, now + window, 500)
        OpenRows(conn, passages=False).read_span(lanes, now - window, now + window, 500)
    # named both ways; the nearest open rows, one statement per direction and table; the
    # whole (sparse) window of the lanes, bounded by a LIMIT, per table
    assert len(plans) == 8
    for plan in plans:
        assert full_scans(plan) == [], plan
    open_lanes = "\n".join(plans[2:6])
    # the partial indexes of open rows: a seek skips every screened row in the window
    # (the span reads are bounded by their LIMIT whichever index the planner takes)
    assert open_lanes.count("ix_passage_open_lane") == 2, open_lanes
    assert open_lanes.count("ix_reading_open_lane") == 2, open_lanes


def test_alerts_find_the_person_of_a_reading_from_an_index(
    engine_without_statistics: Engine, make_settings: Any
) -> None:
    from services.alerts.timed_rules import Thresholds

    settings = make_settings()
    processor = Processor(
        engine_without_statistics,
        Thresholds.from_settings(settings),
        utcnow,
        timedelta(minutes=10),
        100,
        30,
    )
    rows = [
        SimpleNamespace(
            id=n, passage_id=n if n % 2 else None, checkpoint_id="cp-001", entry_msg_id=f"e{n}"
        )
        for n in range(1, 200)
    ]
    with engine_without_statistics.connect() as conn, explained(conn) as plans:
        assert processor._reading_persons(conn, rows) == {}
    assert len(plans) == 2
    for plan in plans:
        assert full_scans(plan) == [], plan


def test_registry_look_ups_of_a_batch_come_from_indexes(
    engine_without_statistics: Engine, small_community: DemoCommunity
) -> None:
    entries = []
    for n, person in enumerate(small_community.people[:150]):
        body = {
            "msg_id": f"e{n}",
            "ts": utcnow().isoformat(),
            "direction": "in",
            "kind": "person",
            "id_number": person.id_number,
            "qr_pass": person.pass_code,
        }
        entries.append(Inbound("p/cp/cp-001/entry", json.dumps(body).encode(), utcnow()))
    entries += [
        Inbound("p/cp/cp-001/entry", json.dumps(vehicle).encode(), utcnow())
        for vehicle in (
            {
                "msg_id": f"v{n}",
                "ts": utcnow().isoformat(),
                "direction": "out",
                "kind": "vehicle",
                "plate": v.plate,
            }
            for n, v in enumerate(small_community.vehicles[:20])
        )
    ]
    accepted = [parse_inbound(item, "p", {"cp-001"}, 8192) for item in entries]
    assert all(isinstance(item, Accepted) for item in accepted)
    with engine_without_statistics.connect() as conn, explained(conn) as plans:
        view = load_registry(conn, accepted, TEST_SECRET, {})  # type: ignore[arg-type]
    assert len(view.person_ids) == 150 and len(view.vehicles) == 20
    assert len(plans) == 4  # people, passes, quarantines, vehicles
    for plan in plans:
        assert full_scans(plan, ("person", "pass", "quarantine", "vehicle")) == [], plan
