"""The alert path's cost per pass does not depend on what shares the window (issue 19):
a stuck clock puts thousands of passages and readings at one checkpoint and one
timestamp, and a pass over the next rows sends the same statements as in a quiet
window. Readings are caught up before a batch of passages, so a fever does not wait
behind a flood of strangers' passages. On PostgreSQL, the foreign-key checks of the
rows a pass writes use the primary key however the alert table grew in the session."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, update

from services.alerts import store
from services.alerts.screening_timers import RECENT, recent_lanes
from services.alerts.service import AlertService
from services.alerts.timed_processor import UNSCREENED_WATERMARK, TimerReport
from services.core.db import make_engine
from services.core.tables import passage_t, reading_t, watermark_t
from tests.support.alerts import T0, Clock, alerts, statements

CP = "cp-051"


def flood(engine: Engine, first: int, count: int, implausible_every: int = 20) -> None:
    """The bench's stuck clock: strangers' passages and unlinked readings (1 in 3) at
    one checkpoint, all stamped T0; one reading in `implausible_every` implausible."""
    passages, readings = [], []
    for n in range(first, first + count):
        base = {"checkpoint_id": CP, "ts": T0, "device_ts": T0, "received_at": T0}
        if n % 3 == 0:
            bad = (n // 3) % implausible_every == 0
            readings.append(
                {
                    **base,
                    "msg_id": f"r-{n}",
                    "direction": "in",
                    "temp_c": 12.0 if bad else 36.4,
                    "fever": False,
                    "implausible": bad,
                }
            )
            continue
        passages.append(
            {
                **base,
                "msg_id": f"p-{n}",
                "direction": ("in", "out")[n % 2],
                "kind": "person",
                "registration": "invalid_id",
                "screened": False,
                "id_hash": f"{n:016x}" + "0" * 48,
                "id_masked": "4403**********123X",
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(passage_t), passages)
        conn.execute(insert(reading_t), readings)


def drain(service: AlertService) -> None:
    while service.processor.run_once():
        pass


def statements_of_a_pass(service: AlertService, engine: Engine, first: int) -> dict[str, int]:
    """Statements of each source's pass over the same 300 new flood rows."""
    flood(engine, first, 300, implausible_every=4)  # 25 implausible readings of 100
    counted = {}
    for source in ("reading", "passage"):
        with statements(engine) as sent:
            service.processor.process(source)
        counted[source] = len(sent)
    return counted


def test_a_pass_sends_the_same_statements_however_full_the_window(
    make_settings: Any, seeded_engine: Engine
) -> None:
    service = AlertService(make_settings(alerts_batch_size=1000), seeded_engine, clock=Clock())
    flood(seeded_engine, 0, 30, implausible_every=1)  # the sensor fault is open
    drain(service)
    quiet = statements_of_a_pass(service, seeded_engine, 10_000)
    flood(seeded_engine, 20_000, 3_000)  # 2,000 passages and 1,000 readings at one instant
    drain(service)
    dense = statements_of_a_pass(service, seeded_engine, 30_000)
    assert dense == quiet
    # one statement counts the sensor faults of the 25 implausible readings, not 25
    assert quiet["reading"] <= 12, quiet
    # every implausible reading from the third on (all in one window) found the fault
    with seeded_engine.connect() as conn:
        implausible = conn.execute(
            select(func.count()).where(reading_t.c.implausible.is_(True))
        ).scalar_one()
    (fault,) = alerts(seeded_engine, "sensor_fault")
    assert fault.occurrences == implausible - 2


def watermark(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(watermark_t.c.last_id).where(watermark_t.c.name == name)).scalar()
        )


def test_readings_are_caught_up_before_a_batch_of_passages(
    make_settings: Any, seeded_engine: Engine
) -> None:
    service = AlertService(make_settings(alerts_batch_size=10), seeded_engine, clock=Clock())
    flood(seeded_engine, 0, 90)  # 60 passages, 30 readings
    read = service.processor.run_once()
    assert read == 30 + 10
    with seeded_engine.connect() as conn:
        last_reading = conn.execute(select(reading_t.c.id).order_by(reading_t.c.id.desc())).first()
        tenth_passage = conn.execute(select(passage_t.c.id).order_by(passage_t.c.id).limit(10))
        assert last_reading is not None
        assert watermark(seeded_engine, "reading") == last_reading[0]
        assert watermark(seeded_engine, "passage") == max(r[0] for r in tenth_passage)


def test_timed_rules_send_the_same_statements_for_6_or_60_passages(
    make_settings: Any, seeded_engine: Engine
) -> None:
    """Passages due unscreened are raised as one batch; alerts screened late after all
    are looked up and resolved together, not one statement (or four) per alert."""
    clock = Clock()
    service = AlertService(make_settings(), seeded_engine, clock=clock)

    def unscreened_rule() -> TimerReport:
        report = TimerReport()
        with seeded_engine.begin() as conn:
            service.timers._unscreened(conn, clock(), report)
        return report

    unscreened_rule()  # the first call warms what is looked up once
    counted = []
    for first, count in ((0, 6), (1_000, 60)):
        flood(seeded_engine, first, count)
        clock.advance(120)  # their screening deadline has passed
        with statements(seeded_engine) as raising:
            opened = unscreened_rule().opened
        with seeded_engine.begin() as conn:  # screened late after all
            conn.execute(update(passage_t).values(screened=True))
        with statements(seeded_engine) as resolving:
            resolved = unscreened_rule().resolved
        assert len(opened) == len(resolved) == count * 2 // 3
        counted.append((len(raising), len(resolving)))
    assert counted[0] == counted[1]
    late = alerts(seeded_engine, "unscreened_passage")
    assert len(late) == 44 and {a.outcome for a in late} == {"screened_late"}
    assert watermark(seeded_engine, UNSCREENED_WATERMARK) > 0


def test_foreign_key_checks_read_the_primary_key_as_alerts_grow(
    make_settings: Any, database_url: str, seeded_engine: Engine
) -> None:
    """PostgreSQL plans a foreign-key check once per session; planned while `alert` was
    nearly empty it was a sequential scan, kept while the table grew. One session here
    (pool of one), its plans shown by auto_explain (needs a superuser)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's plan cache")
    plans: list[str] = []
    engine = make_engine(database_url, pool_size=1, max_overflow=0)

    @event.listens_for(engine, "connect")
    def explain_nested(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.add_notice_handler(lambda notice: plans.append(notice.message_primary))
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("LOAD 'auto_explain'")
        except Exception:  # not a superuser, or no auto_explain
            dbapi_connection.rollback()
            return
        for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_level = notice"):
            cursor.execute(f"SET auto_explain.{setting}")
        dbapi_connection.commit()

    service = AlertService(make_settings(), engine, clock=Clock())
    try:
        flood(engine, 0, 30)  # 20 alerts: the checks run more than 5 times, then a plan
        drain(service)
        if not plans:
            pytest.skip("auto_explain not available")
        flood(engine, 100, 3_000)
        drain(service)
        plans.clear()
        flood(engine, 10_000, 300)
        drain(service)
    finally:
        engine.dispose()
    checks = [p for p in plans if 'FROM ONLY "public"."alert" x' in p]
    assert checks, "no foreign-key check of alert seen"
    assert not [p for p in checks if "Seq Scan on alert" in p]


def test_open_alerts_of_a_type_are_read_through_the_partial_index_of_open_alerts(
    make_settings: Any, seeded_engine: Engine
) -> None:
    """Whatever the collation (the official PostgreSQL image's is en_US.utf8, where a
    prefix of `open_key` is no range): the open alerts of a type are one range of
    `ix_alert_open_type`, which holds no resolved alert."""
    service = AlertService(make_settings(), seeded_engine, clock=Clock())
    flood(seeded_engine, 0, 300, implausible_every=1)  # 200 strangers, a sensor fault
    drain(service)
    with seeded_engine.begin() as conn:
        strangers = store.open_alerts_of(conn, ["unregistered_entry"])
        store.resolve_keys(conn, [a.open_key for a in strangers[:150]], T0, "test")
        faults = store.open_alerts_of(conn, ["sensor_fault", "fever"])
        left = store.open_alerts_of(conn, ["unregistered_entry", "sensor_fault"])
        with statements(seeded_engine) as sent:
            store.open_alerts_of(conn, ["fever"])
        explain = "EXPLAIN QUERY PLAN" if conn.dialect.name == "sqlite" else "EXPLAIN"
        if conn.dialect.name == "postgresql":  # the plan a big table gets, on a small one
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = " ".join(
            str(row)
            for row in conn.exec_driver_sql(
                f"{explain} SELECT * FROM alert WHERE type IN ('fever') AND open_key IS NOT NULL"
            )
        )
        in_index = conn.exec_driver_sql(
            "SELECT count(*) FROM alert WHERE open_key IS NOT NULL"
        ).scalar_one()
    assert len(strangers) == 200
    assert [a.type for a in faults] == ["sensor_fault"]
    assert sorted(a.type for a in left) == ["sensor_fault"] + ["unregistered_entry"] * 50
    assert "open_key IS NOT NULL" in sent[0]
    assert "ix_alert_open_type" in plan, plan
    assert in_index == 51  # the 150 resolved strangers left the index


def plain_reading(checkpoint_id: str, msg_id: str, ts: datetime) -> dict[str, Any]:
    """A normal outbound reading, received at T0."""
    return {
        "checkpoint_id": checkpoint_id,
        "msg_id": msg_id,
        "ts": ts,
        "device_ts": T0,
        "received_at": T0,
        "direction": "out",
        "temp_c": 36.5,
        "fever": False,
        "implausible": False,
    }


def test_lanes_with_recent_readings_are_found_by_one_probe_per_lane(
    seeded_engine: Engine,
) -> None:
    flood(seeded_engine, 0, 3_000)  # 1,000 readings at cp-051, stamped T0
    with seeded_engine.begin() as conn:
        conn.execute(
            insert(reading_t),
            [
                # stamped too early
                plain_reading("cp-007", f"old-{n}", T0 - RECENT - timedelta(seconds=n + 1))
                for n in range(50)
            ]
            + [plain_reading("cp-002", "recent-out", T0 - timedelta(seconds=30))],
        )
        found = {tuple(row) for row in conn.execute(recent_lanes(T0))}
        if conn.dialect.name == "postgresql":  # the plan with the table's statistics
            conn.exec_driver_sql("ANALYZE reading, checkpoint")
        compiled = recent_lanes(T0).compile(conn, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN" if conn.dialect.name == "sqlite" else "EXPLAIN"
        plan = " ".join(str(row) for row in conn.exec_driver_sql(f"{explain} {compiled}"))
    assert found == {(CP, "in"), ("cp-002", "out")}
    assert "ix_reading_cp_dir_ts" in plan and "ix_reading_ts" not in plan, plan
