"""A fever is a case: opening one with its fever alert, recording the handheld
re-check it asks for (within CPM_RECHECK_WINDOW_S), and deciding it with a disposition
from the fixed list (roster.FeverDisposition) and the staff member who decided.

A normal re-check decides the case by itself (`recheck_normal`) only when the
handheld names its operator as a known staff member: that person decided. Otherwise the
re-check is recorded and the case waits for a disposition through the API.
`open_fevers` lists the open fever alerts as the re-check matching needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from services.alerts import store
from services.alerts.event_rules import AlertType, Finding, OpenFever, person_subject
from services.core.models.roster import FeverDisposition
from services.core.tables import dialect_insert, fever_case_t, passage_t, reading_t, staff_t

DISPOSITIONS = frozenset(d.value for d in FeverDisposition)


def open_case(
    conn: Connection, alert_id: int, finding: Finding, now: datetime, window: timedelta
) -> None:
    open_cases(conn, [(alert_id, finding)], now, window)


def open_cases(
    conn: Connection, opened: Sequence[tuple[int, Finding]], now: datetime, window: timedelta
) -> None:
    """A case for each newly opened fever alert: two statements for any number."""
    if not opened:
        return
    reading_ids = [f.details["reading_id"] for _, f in opened if "reading_id" in f.details]
    directions: dict[int, str] = {}
    if reading_ids:
        directions = dict(
            conn.execute(
                select(reading_t.c.id, reading_t.c.direction).where(reading_t.c.id.in_(reading_ids))
            ).all()
        )
    rows = []
    for alert_id, finding in opened:
        details = finding.details
        fever_at = datetime.fromisoformat(details["fever_ts"]) if "fever_ts" in details else now
        reading_id = details.get("reading_id")
        rows.append(
            {
                "alert_id": alert_id,
                "checkpoint_id": finding.checkpoint_id,
                "direction": (reading_id is not None and directions.get(reading_id)) or "in",
                "reading_id": reading_id,
                "fever_at": fever_at,
                "temp_c": float(details.get("temp_c", 0.0)),
                "recheck_due_at": fever_at + window,
            }
        )
    statement = dialect_insert(conn, fever_case_t).on_conflict_do_nothing(
        index_elements=["alert_id"]
    )
    conn.execute(statement, rows)


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


def open_fevers(conn: Connection) -> list[OpenFever]:
    """Open fever alerts, with the person filled in from the fever reading's passage
    when ingest linked it after the alert was raised (one query for all of them)."""
    rows = store.open_alerts_of(conn, [AlertType.FEVER.value])
    unknown = [
        r.details["reading_id"]
        for r in rows
        if "person" not in (r.details or {}) and "reading_id" in (r.details or {})
    ]
    linked: dict[int, tuple[int, str | None]] = {}
    if unknown:
        for reading_id, passage_id, id_hash in conn.execute(
            select(reading_t.c.id, passage_t.c.id, passage_t.c.id_hash)
            .join(passage_t, reading_t.c.passage_id == passage_t.c.id)
            .where(reading_t.c.id.in_(unknown))
        ):
            linked[reading_id] = (passage_id, id_hash)
    fevers = []
    for alert in rows:
        d = alert.details or {}
        reading_id = d.get("reading_id")
        person, passage_id = d.get("person"), d.get("passage_id")
        if person is None and reading_id in linked:
            passage_id, id_hash = linked[reading_id]
            person = person_subject(id_hash)[2:] if id_hash else None
        fever_ts = datetime.fromisoformat(d["fever_ts"]) if "fever_ts" in d else alert.opened_at
        fevers.append(
            OpenFever(
                alert_id=alert.id,
                checkpoint_id=alert.checkpoint_id,
                reading_id=reading_id or 0,
                fever_ts=fever_ts,
                entry_msg_id=d.get("entry_msg_id"),
                passage_id=passage_id,
                person=person,
            )
        )
    return fevers
