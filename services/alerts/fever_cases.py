"""A fever is a case: opening one with its fever alert, recording the handheld
re-check it asks for (within CPM_RECHECK_WINDOW_S), and deciding it with a disposition
from the fixed list (roster.FeverDisposition) and the staff member who decided.

A normal re-check decides the case by itself (`recheck_normal`) only when the
handheld names its operator as a known staff member: that person decided. Otherwise the
re-check is recorded and the case waits for a disposition through the API.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from services.alerts.event_rules import Finding
from services.core.models.roster import FeverDisposition
from services.core.tables import dialect_insert, fever_case_t, reading_t, staff_t

DISPOSITIONS = frozenset(d.value for d in FeverDisposition)


def open_case(
    conn: Connection, alert_id: int, finding: Finding, now: datetime, window: timedelta
) -> None:
    details = finding.details
    fever_at = datetime.fromisoformat(details["fever_ts"]) if "fever_ts" in details else now
    reading_id = details.get("reading_id")
    direction = "in"
    if reading_id is not None:
        found = conn.execute(
            select(reading_t.c.direction).where(reading_t.c.id == reading_id)
        ).scalar()
        direction = found or direction
    statement = dialect_insert(conn, fever_case_t).values(
        alert_id=alert_id,
        checkpoint_id=finding.checkpoint_id,
        direction=direction,
        reading_id=reading_id,
        fever_at=fever_at,
        temp_c=float(details.get("temp_c", 0.0)),
        recheck_due_at=fever_at + window,
    )
    conn.execute(statement.on_conflict_do_nothing(index_elements=["alert_id"]))


def record_recheck(conn: Connection, alert_id: int, reading: Any, now: datetime) -> str | None:
    """Note a normal re-check on the case; the deciding staff id when the handheld
    named a known operator (the case is then decided `recheck_normal`), else None."""
    operator = conn.execute(
        select(reading_t.c.operator).where(reading_t.c.id == reading.id)
    ).scalar()
    known = (
        operator is not None
        and conn.execute(select(staff_t.c.id).where(staff_t.c.id == operator)).scalar() is not None
    )
    values: dict[str, Any] = {
        "recheck_reading_id": reading.id,
        "recheck_temp_c": reading.temp_c,
        "recheck_at": reading.ts,
    }
    if known:
        values.update(
            disposition=FeverDisposition.RECHECK_NORMAL.value, decided_by=operator, decided_at=now
        )
    conn.execute(
        update(fever_case_t)
        .where(fever_case_t.c.alert_id == alert_id, fever_case_t.c.disposition.is_(None))
        .values(**values)
    )
    return str(operator) if known else None


def decide(
    conn: Connection, alert_id: int, disposition: str, decided_by: str, now: datetime
) -> None:
    """The case's disposition, written with the alert's resolution (same transaction)."""
    conn.execute(
        update(fever_case_t)
        .where(fever_case_t.c.alert_id == alert_id)
        .values(disposition=disposition, decided_by=decided_by, decided_at=now)
    )
