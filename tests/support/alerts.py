"""Helpers for the alert tests (no tests here): stored rows as ingest writes them, a
hand-driven clock, a look at the alerts, and the statements sent meanwhile."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, select, text
from sqlmodel import Session

from services.core.models import CheckpointState, Passage, Reading, StaffPresence
from services.core.models.alerts import Alert, AlertHistory, Outbox

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
_msg = itertools.count(1)


class Clock:
    """`now()` that moves only when told."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def add_passage(engine: Engine, cp: str = "cp-001", ts: datetime = T0, **values: Any) -> int:
    fields: dict[str, Any] = {
        "checkpoint_id": cp,
        "msg_id": f"e-{next(_msg)}",
        "ts": ts,
        "device_ts": ts,
        "received_at": ts,
        "direction": "in",
        "kind": "person",
        "registration": "registered",
        "screened": True,
        "id_hash": "ab" * 32,
        "id_masked": "4403**********123X",
    }
    fields.update(values)
    with Session(engine) as session:
        row = Passage(**fields)
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def add_reading(
    engine: Engine, cp: str = "cp-001", ts: datetime = T0, temp_c: float = 36.5, **values: Any
) -> int:
    fields: dict[str, Any] = {
        "checkpoint_id": cp,
        "msg_id": f"r-{next(_msg)}",
        "ts": ts,
        "device_ts": ts,
        "received_at": ts,
        "direction": "in",
        "temp_c": temp_c,
        "fever": 37.3 <= temp_c <= 45.0,
        "implausible": not 30.0 <= temp_c <= 45.0,
    }
    fields.update(values)
    with Session(engine) as session:
        row = Reading(**fields)
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def set_state(engine: Engine, cp: str, **values: Any) -> None:
    with Session(engine) as session:
        state = session.get(CheckpointState, cp) or CheckpointState(checkpoint_id=cp)
        for name, value in values.items():
            setattr(state, name, value)
        session.add(state)
        session.commit()


def set_presence(engine: Engine, cp: str, staff_id: str, on_duty: bool, since: datetime) -> None:
    with Session(engine) as session:
        row = session.get(StaffPresence, (cp, staff_id))
        row = row or StaffPresence(
            checkpoint_id=cp, staff_id=staff_id, on_duty=on_duty, since=since
        )
        row.on_duty, row.since = on_duty, since
        session.add(row)
        session.commit()


def alerts(engine: Engine, alert_type: str | None = None) -> list[Alert]:
    with Session(engine) as session:
        query = select(Alert).order_by(Alert.id)  # type: ignore[arg-type]
        if alert_type:
            query = query.where(Alert.type == alert_type)  # type: ignore[arg-type]
        return list(session.scalars(query).all())


def history(engine: Engine, alert_id: int) -> list[str]:
    with Session(engine) as session:
        rows = session.scalars(
            select(AlertHistory)
            .where(AlertHistory.alert_id == alert_id)  # type: ignore[arg-type]
            .order_by(AlertHistory.id)  # type: ignore[arg-type]
        ).all()
        return [row.action for row in rows]


def outbox(engine: Engine) -> list[Outbox]:
    with Session(engine) as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)).all())  # type: ignore[arg-type]


def site_of(engine: Engine, cp: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(text("SELECT site_id FROM checkpoint WHERE id = :c"), {"c": cp}).scalar()
        )


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements sent to the database meanwhile (executemany counts once)."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", count)
