"""What one batch asks of the database: how many statements, through which layer, and
that a refused statement still surfaces as SQLAlchemy's error (counts, never timings)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, event, text
from sqlalchemy.exc import IntegrityError

from devices.simulator.load import message_stream
from services.core.demo import DemoCommunity
from services.ingest import batch as batch_module
from services.ingest import bulk
from services.ingest.batch import BatchProcessor
from services.ingest.parse import Inbound


class CountingCursor:
    """The driver's cursor, counting what it is asked to run."""

    def __init__(self, cursor: Any, seen: Counter[str]) -> None:
        self._cursor = cursor
        self._seen = seen

    def execute(self, sql: str, params: Any = ()) -> Any:
        self._seen[" ".join(sql.split()[:3])] += 1
        return self._cursor.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> Any:
        self._seen["(many) " + " ".join(sql.split()[:3])] += 1
        return self._cursor.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@pytest.fixture
def driver_statements(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    seen: Counter[str] = Counter()
    real = bulk._cursor
    monkeypatch.setattr(bulk, "_cursor", lambda conn: CountingCursor(real(conn), seen))
    return seen


@pytest.fixture
def sqlalchemy_statements(seeded_engine: Engine) -> list[str]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(seeded_engine, "before_cursor_execute", count)
    yield seen
    event.remove(seeded_engine, "before_cursor_execute", count)


def realistic(community: DemoCommunity, prefix: str, count: int) -> list[Inbound]:
    """The simulator's load mode: entries, readings, duty and heartbeats at 102 gates."""
    now = datetime.now(UTC)
    return [Inbound(t, p, now) for t, p in message_stream(community, prefix, count)]


def test_a_batch_runs_a_few_statements_on_the_driver_whatever_its_size(
    monkeypatch: pytest.MonkeyPatch,
    seeded_engine: Engine,
    make_settings: Any,
    small_community: DemoCommunity,
    driver_statements: Counter[str],
    sqlalchemy_statements: list[str],
) -> None:
    settings = make_settings()
    processor = BatchProcessor(seeded_engine, settings)
    messages = realistic(small_community, settings.topic_prefix, 1301)
    processor.process(messages[:1])  # checkpoints read, connection set up
    # the registry's checkpoints are re-read every second: not in the figures below
    monkeypatch.setattr(batch_module, "CHECKPOINT_CACHE_S", 3600.0)
    per_batch = []
    for start, size in ((1, 100), (101, 1200)):
        driver_statements.clear()
        sqlalchemy_statements.clear()
        outcome = processor.process(messages[start : start + size])
        assert sum(outcome.stored.values()) > 0.9 * size
        per_batch.append(sum(driver_statements.values()))
        # the hot path is all driver SQL; SQLAlchemy only for the rare status events
        assert [s for s in sqlalchemy_statements if "device_status_event" not in s] == []
    small, large = per_batch
    # 12x the messages: the same statements, but for SQLite's insert chunks (a few
    # more rows per statement)
    assert small <= 30, driver_statements
    assert large <= small + 8, (small, large)


def test_the_sqlite_busy_timeout_is_set_once_per_connection(
    seeded_engine: Engine,
    make_settings: Any,
    small_community: DemoCommunity,
    driver_statements: Counter[str],
) -> None:
    if seeded_engine.dialect.name != "sqlite":
        pytest.skip("a setting of SQLite connections")
    settings = make_settings()
    processor = BatchProcessor(seeded_engine, settings)
    messages = realistic(small_community, settings.topic_prefix, 30)
    for n in range(3):
        processor.process(messages[n * 10 : n * 10 + 10])
    assert driver_statements["PRAGMA busy_timeout ="] == 1
    with seeded_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 5000


def test_a_statement_the_database_refuses_raises_sqlalchemys_error(
    seeded_engine: Engine,
) -> None:
    with seeded_engine.begin() as conn:
        bulk.run(conn, "CREATE TABLE one_key (k INTEGER PRIMARY KEY)")
        bulk.run_many(conn, "INSERT INTO one_key (k) VALUES (1)", [()])
    for execute in (bulk.run, lambda conn, sql: bulk.run_many(conn, sql, [()])):
        with pytest.raises(IntegrityError), seeded_engine.begin() as conn:
            execute(conn, "INSERT INTO one_key (k) VALUES (1)")
    with seeded_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM one_key")).scalar_one() == 1


def device_message(
    prefix: str, checkpoint: str, topic_kind: str, received: datetime, **body: Any
) -> Inbound:
    payload = json.dumps({"ts": received.isoformat(), **body}).encode()
    return Inbound(f"{prefix}/cp/{checkpoint}/{topic_kind}", payload, received)


def test_checkpoint_state_keeps_the_newest_values_of_batches_out_of_order(
    seeded_engine: Engine, make_settings: Any, driver_statements: Counter[str]
) -> None:
    settings = make_settings()
    prefix = settings.topic_prefix
    processor = BatchProcessor(seeded_engine, settings)
    late = datetime.now(UTC).replace(microsecond=0)
    early = late - timedelta(minutes=5)
    gates = [f"cp-{n:03d}" for n in range(1, 41)]
    # the newer batch first: a heartbeat and a status at every gate, an entry at half
    newer = [device_message(prefix, cp, "heartbeat", late, uptime_s=900, backlog=3) for cp in gates]
    newer += [
        device_message(prefix, cp, "status", late, state="offline", firmware="2.0") for cp in gates
    ]
    newer += [
        device_message(prefix, cp, "entry", late, msg_id=f"n-{cp}", direction="in", kind="vehicle")
        for cp in gates[:20]
    ]
    driver_statements.clear()
    processor.process(newer)
    # the 40 rows: SQLite steps one statement through them in C (executemany);
    # PostgreSQL gets them as arrays in one statement (psycopg's executemany is a
    # Python loop per row)
    many = seeded_engine.dialect.name == "sqlite"
    assert driver_statements[f"{'(many) ' if many else ''}UPDATE checkpoint_state SET"] == 1
    assert sum(n for s, n in driver_statements.items() if "checkpoint_state" in s) == 1
    # then an older one, replayed: it may only fill in what is still empty
    older = [
        device_message(prefix, cp, "heartbeat", early, uptime_s=600, backlog=9) for cp in gates
    ]
    older += [
        device_message(prefix, cp, "status", early, state="online", firmware="1.0") for cp in gates
    ]
    older += [
        device_message(prefix, cp, "entry", early, msg_id=f"o-{cp}", direction="in", kind="vehicle")
        for cp in gates
    ]
    processor.process(older)
    with seeded_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT checkpoint_id, device_state, firmware, uptime_s, backlog, "
                "last_seen_at, last_heartbeat_at, last_passage_at FROM checkpoint_state "
                "WHERE checkpoint_id IN :cps"
            ).bindparams(bindparam("cps", expanding=True)),
            {"cps": gates},
        ).all()
    assert len(rows) == len(gates)
    for cp, state, firmware, uptime, backlog, seen, heartbeat, passage in rows:
        assert (state, firmware, uptime, backlog) == ("offline", "2.0", 900, 3), cp
        assert utc(seen) == late and utc(heartbeat) == late, cp
        # the gates with a newer entry keep it; the others take the replayed one
        assert utc(passage) == (late if cp in gates[:20] else early), cp


def utc(value: datetime | str) -> datetime:
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
