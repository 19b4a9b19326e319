"""What a batch changes besides its event rows, in the same transaction: who is on duty
at each checkpoint, the device status events, the live `checkpoint_state` row and the
hourly roll-up counters. State updates keep the newest value and counters only add, so
batches that arrive out of order (a replayed backlog, two ingest processes) leave the
same result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, column, table, update

from services.core.models.events import ROLLUP_COUNTERS
from services.core.tables import dialect_insert, presence_t, rollup_t, state_t, status_t
from services.ingest.bulk import add_counters, pg_arrays, pg_unnest, run, run_many, sqlite_value
from services.ingest.plan import BatchPlan


def update_presence(conn: Connection, duty_rows: list[dict[str, Any]]) -> None:
    """Who is on duty where: the latest event per staff member and checkpoint wins, even
    when events arrive out of order (a replayed backlog)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in duty_rows:
        key = (row["checkpoint_id"], row["staff_id"])
        if key not in latest or row["ts"] >= latest[key]["since"]:
            latest[key] = {
                "checkpoint_id": key[0],
                "staff_id": key[1],
                "on_duty": row["action"] == "on",
                "since": row["ts"],
            }
    if not latest:
        return
    sql, order = _compiled(conn, "presence", _presence_upsert)
    run_many(conn, sql, _driver_params(conn, [latest[key] for key in sorted(latest)], order))


def _presence_upsert(conn: Connection) -> Any:
    statement = dialect_insert(conn, presence_t)
    return statement.on_conflict_do_update(
        index_elements=["checkpoint_id", "staff_id"],
        set_={"on_duty": statement.excluded.on_duty, "since": statement.excluded.since},
        where=presence_t.c.since <= statement.excluded.since,
    )


_COMPILED: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}


def _compiled(
    conn: Connection, name: str, build: Callable[[Connection], Any]
) -> tuple[str, tuple[str, ...]]:
    """A statement's text for this database, compiled once (building and compiling it
    cost more than running it, ~1 ms a batch), and (SQLite) the order of its positional
    parameters: it runs on the driver, below SQLAlchemy's per-row bind processing."""
    key = (conn.dialect.name, name)
    if key not in _COMPILED:
        compiled = build(conn).compile(dialect=conn.dialect)
        _COMPILED[key] = (str(compiled), tuple(compiled.positiontup or ()))
    return _COMPILED[key]


def _driver_params(
    conn: Connection, rows: list[dict[str, Any]], order: tuple[str, ...]
) -> list[Any]:
    """Rows as the driver takes them: SQLite positional, timestamps as SQLAlchemy's text."""
    if conn.dialect.name != "sqlite":
        return rows
    return [
        tuple([None if (value := row[n]) is None else sqlite_value(value) for n in order])
        for row in rows
    ]


def add_rollups(conn: Connection, rollups: dict[tuple[str, datetime], Counter[str]]) -> None:
    rows = [
        # .get: a Counter's missing key goes through Python-level __missing__ (~15 a row)
        {"checkpoint_id": cp, "bucket": bucket, **{c: counts.get(c, 0) for c in ROLLUP_COUNTERS}}
        for (cp, bucket), counts in sorted(rollups.items())  # sorted: no deadlocks
    ]
    add_counters(conn, rollup_t, rows, ("checkpoint_id", "bucket"), ROLLUP_COUNTERS)


def insert_status_events(conn: Connection, rows: list[dict[str, Any]]) -> list[Any]:
    """Few and far between: plain SQLAlchemy, so device_ts comes back as a datetime."""
    if not rows:
        return []
    statement = (
        dialect_insert(conn, status_t)
        .on_conflict_do_nothing(index_elements=["checkpoint_id", "device_ts", "state"])
        .returning(status_t.c.id, status_t.c.checkpoint_id, status_t.c.device_ts, status_t.c.state)
    )
    return list(conn.execute(statement, rows).all())


def _later(column: Any, value: Any) -> Any:
    """`value` when it is given and newer than the column, else the column."""
    return case(
        (and_(value.is_not(None), (column.is_(None)) | (column < value)), value), else_=column
    )


STATE_COLUMNS = (
    "last_seen_at",
    "last_passage_at",
    "last_reading_at",
    "last_heartbeat_at",
    "uptime_s",
    "backlog",
    "clock_skew_s",
    "clock_skew_at",
    "device_state",
    "state_since",
    "firmware",
)
_NEW_VALUES = "v"  # PostgreSQL: the batch's new values, a row per checkpoint


def _state_update(conn: Connection) -> Any:
    """One row per checkpoint of the batch (a hundred on the simulator's load). SQLite:
    a statement per row (executemany, a loop in C); PostgreSQL: one statement joining the
    batch's values as arrays (`unnest`): psycopg's executemany spent ~100 µs of Python a
    row, ~10 ms a batch."""
    c = state_t.c
    p: dict[str, Any]
    if conn.dialect.name == "postgresql":
        new = table(_NEW_VALUES, *[column(f"p_{n}", c[n].type) for n in STATE_COLUMNS])
        new.append_column(column("p_checkpoint_id", c.checkpoint_id.type))
        p = {name: new.c[f"p_{name}"] for name in STATE_COLUMNS}
        p["checkpoint_id"] = new.c.p_checkpoint_id
    else:
        p = {name: bindparam(f"p_{name}", type_=c[name].type) for name in STATE_COLUMNS}
        p["checkpoint_id"] = bindparam("p_checkpoint_id")
    newer_state = and_(
        p["state_since"].is_not(None), c.state_since.is_(None) | (c.state_since <= p["state_since"])
    )
    newer_heartbeat = and_(
        p["last_heartbeat_at"].is_not(None),
        c.last_heartbeat_at.is_(None) | (c.last_heartbeat_at <= p["last_heartbeat_at"]),
    )
    newer_skew = and_(
        p["clock_skew_at"].is_not(None),
        c.clock_skew_at.is_(None) | (c.clock_skew_at <= p["clock_skew_at"]),
    )
    statement = (
        update(state_t)
        .where(c.checkpoint_id == p["checkpoint_id"])
        .values(
            last_seen_at=_later(c.last_seen_at, p["last_seen_at"]),
            last_passage_at=_later(c.last_passage_at, p["last_passage_at"]),
            last_reading_at=_later(c.last_reading_at, p["last_reading_at"]),
            last_heartbeat_at=case(
                (newer_heartbeat, p["last_heartbeat_at"]), else_=c.last_heartbeat_at
            ),
            uptime_s=case((newer_heartbeat, p["uptime_s"]), else_=c.uptime_s),
            backlog=case((newer_heartbeat, p["backlog"]), else_=c.backlog),
            clock_skew_s=case((newer_skew, p["clock_skew_s"]), else_=c.clock_skew_s),
            clock_skew_at=case((newer_skew, p["clock_skew_at"]), else_=c.clock_skew_at),
            device_state=case((newer_state, p["device_state"]), else_=c.device_state),
            firmware=case(
                (and_(newer_state, p["firmware"].is_not(None)), p["firmware"]), else_=c.firmware
            ),
            state_since=case((newer_state, p["state_since"]), else_=c.state_since),
        )
    )
    return statement


def update_checkpoint_state(
    conn: Connection,
    plan: BatchPlan,
    activity: dict[str, dict[str, datetime]],
    device_states: dict[str, dict[str, Any]],
) -> None:
    checkpoints = set(plan.seen)
    if not checkpoints:
        return
    rows = []
    for checkpoint_id in sorted(checkpoints):
        heartbeat = plan.heartbeats.get(checkpoint_id, {})
        skew = plan.skews.get(checkpoint_id)
        status = device_states.get(checkpoint_id)
        seen = activity.get(checkpoint_id, {})
        rows.append(
            {
                "p_checkpoint_id": checkpoint_id,
                "p_last_seen_at": plan.seen[checkpoint_id],
                "p_last_passage_at": seen.get("last_passage_at"),
                "p_last_reading_at": seen.get("last_reading_at"),
                "p_last_heartbeat_at": heartbeat.get("last_heartbeat_at"),
                "p_uptime_s": heartbeat.get("uptime_s"),
                "p_backlog": heartbeat.get("backlog"),
                "p_clock_skew_s": skew[0] if skew else None,
                "p_clock_skew_at": skew[1] if skew else None,
                "p_device_state": status["state"] if status else None,
                "p_state_since": status["ts"] if status else None,
                "p_firmware": status["firmware"] if status else None,
            }
        )
    sql, order = _compiled(conn, "checkpoint_state", _state_update)
    if conn.dialect.name == "postgresql":
        names = ["p_checkpoint_id", *(f"p_{n}" for n in STATE_COLUMNS)]
        columns = [n.removeprefix("p_") for n in names]
        values = pg_unnest(state_t, columns, names)
        joined = sql.replace(f" FROM {_NEW_VALUES} ", f" FROM {values} ", 1)
        if joined == sql:
            raise RuntimeError(f"no FROM {_NEW_VALUES} in the compiled update: {sql}")
        sql = joined
        run(conn, sql, pg_arrays(state_t, rows, columns, names))
        return
    run_many(conn, sql, _driver_params(conn, rows, order))
