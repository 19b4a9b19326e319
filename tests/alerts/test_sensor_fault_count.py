"""The alert service's sensor-fault count reads a bounded range of a small index,
however many implausible (or plausible) readings share the window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, literal, select

from services.alerts.event_processor import (
    RECENT_IMPLAUSIBLE_PG,
    RECENT_IMPLAUSIBLE_SQLITE,
    SENSOR_FAULT_COUNT_CAP,
    reading_fact,
    recent_implausible_counts,
    recent_implausible_query,
)
from services.core.tables import reading_t
from services.ingest.bulk import insert_new

NOW = datetime.now(UTC).replace(microsecond=0)


def readings(prefix: str, count: int, implausible: bool, start: datetime) -> list[dict[str, Any]]:
    return [
        {
            "checkpoint_id": "cp-001",
            "msg_id": f"{prefix}{n}",
            "ts": start + timedelta(milliseconds=n),
            "device_ts": start + timedelta(milliseconds=n),
            "received_at": start + timedelta(milliseconds=n),
            "clock_adjusted": False,
            "temp_c": 12.0 if implausible else 36.5,
            "direction": "in",
            "source": "thermometer",
            "implausible": implausible,
            "fever": False,
        }
        for n in range(count)
    ]


def test_the_count_stops_at_its_cap_and_counts_exactly_below_it(seeded_engine: Engine) -> None:
    with seeded_engine.begin() as conn:
        for prefix, count, implausible, minutes_ago in (
            ("ok", 2000, False, 5),
            ("bad", 3 * SENSOR_FAULT_COUNT_CAP, True, 4),
            ("old", 5, True, 30),  # before the others' window
        ):
            start = NOW - timedelta(minutes=minutes_ago)
            rows = readings(prefix, count, implausible, start)
            insert_new(conn, reading_t, rows, ["checkpoint_id", "msg_id"])
        rows = conn.execute(
            select(reading_t, literal("site").label("site_id"))
            .where(reading_t.c.implausible.is_(True))
            .order_by(reading_t.c.id)
        ).all()
        facts = [reading_fact(row, None) for row in rows]
        counts = [conn.execute(recent_implausible_query(f)).scalar_one() for f in facts]
    cap = SENSOR_FAULT_COUNT_CAP
    # each counts itself and the ones before it in the window, up to the cap
    assert counts[: 3 * cap] == [*range(1, cap + 1), *[cap] * (2 * cap)]
    assert counts[3 * cap :] == [1, 2, 3, 4, 5]  # 26 minutes earlier: a window of their own


def test_the_count_reads_the_partial_index(seeded_engine: Engine) -> None:
    fact = reading_fact(
        type(
            "Row",
            (),
            {
                "id": 10**6, "checkpoint_id": "cp-001", "site_id": "s", "ts": NOW,
                "temp_c": 12.0, "fever": False, "implausible": True, "clock_adjusted": False,
                "msg_id": "m", "entry_msg_id": None, "passage_id": None,
            },
        )(),
        None,
    )  # fmt: skip
    query = recent_implausible_query(fact)
    with seeded_engine.begin() as conn:
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny test table
            plan = conn.exec_driver_sql(f"EXPLAIN {compiled}").scalars().all()
        else:
            plan = [r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    assert any("ix_reading_implausible" in line for line in plan), plan


def test_one_statement_counts_a_batch_as_the_reading_by_reading_count(
    seeded_engine: Engine,
) -> None:
    with seeded_engine.begin() as conn:
        for prefix, count, minutes_ago in (("bad", 2 * SENSOR_FAULT_COUNT_CAP, 4), ("old", 5, 30)):
            rows = readings(prefix, count, True, NOW - timedelta(minutes=minutes_ago))
            insert_new(conn, reading_t, rows, ["checkpoint_id", "msg_id"])
        rows = conn.execute(
            select(reading_t, literal("site").label("site_id")).order_by(reading_t.c.id)
        ).all()
        facts = [reading_fact(row, None) for row in rows]
        one_by_one = {f.id: conn.execute(recent_implausible_query(f)).scalar_one() for f in facts}
        batch = recent_implausible_counts(conn, facts)
    assert batch == one_by_one
    assert sorted(set(batch.values())) == [*range(1, SENSOR_FAULT_COUNT_CAP + 1)]


def test_the_batch_count_reads_the_partial_index(seeded_engine: Engine) -> None:
    params_pg = {"ids": [10**6], "cps": ["cp-001"], "los": [NOW - timedelta(minutes=10)]}
    params_pg |= {"tss": [NOW], "cap": SENSOR_FAULT_COUNT_CAP}
    listed = [[10**6, "cp-001", str(NOW - timedelta(minutes=10)), str(NOW)]]
    with seeded_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a tiny test table
            explain = conn.exec_driver_sql(f"EXPLAIN {RECENT_IMPLAUSIBLE_PG}", params_pg)
            plan = explain.scalars().all()
        else:
            statement = f"EXPLAIN QUERY PLAN {RECENT_IMPLAUSIBLE_SQLITE}"
            params = (SENSOR_FAULT_COUNT_CAP, json.dumps(listed))
            plan = [r[-1] for r in conn.exec_driver_sql(statement, params)]
    assert any("ix_reading_implausible" in line for line in plan), plan
