"""Alert writes, in the caller's transaction: open-or-repeat, resolve, history.

Every change is a single conditional statement (an upsert on `open_key`, an UPDATE
guarded by the current status), so two workers, or a worker and the API, never race:
the database decides who wins and the loser sees zero rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from services.alerts.event_rules import Finding
from services.alerts.outbox import enqueue
from services.core.models.alerts import (
    AlertEvent,
    AlertStatus,
)
from services.core.tables import alert_t, dialect_insert, history_t, silence_t

SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Raised:
    alert_id: int
    created: bool
    silenced: bool


def active_silence(conn: Connection, checkpoint_id: str, site_id: str, now: datetime) -> int | None:
    """The id of a silence covering this checkpoint (or its site) now, if any."""
    row = conn.execute(
        select(silence_t.c.id)
        .where(
            or_(silence_t.c.checkpoint_id == checkpoint_id, silence_t.c.site_id == site_id),
            silence_t.c.starts_at <= now,
            silence_t.c.ends_at > now,
            silence_t.c.lifted_at.is_(None),
        )
        .limit(1)
    ).first()
    return None if row is None else int(row[0])


def add_history(
    conn: Connection,
    alert_id: int,
    action: AlertEvent,
    status: str,
    now: datetime,
    actor: str = SYSTEM,
    note: str | None = None,
) -> None:
    conn.execute(
        insert(history_t).values(
            alert_id=alert_id, at=now, action=action.value, status=status, actor=actor, note=note
        )
    )


def raise_alert(
    conn: Connection,
    finding: Finding,
    now: datetime,
    escalate_after: Any,
    *,
    repeat: bool = True,
) -> Raised | None:
    """Open the finding's alert, or count a repeat of the open one.

    `repeat=False` (conditions re-found on every tick) leaves an open alert untouched and
    returns None for it. A new alert is delivered (outbox rows) unless silenced.
    """
    silence_id = active_silence(conn, finding.checkpoint_id, finding.site_id, now)
    silenced = silence_id is not None
    details = dict(finding.details)
    if silenced:
        details["silence_id"] = silence_id
    values = {
        "type": finding.type.value,
        "severity": finding.severity.value,
        "checkpoint_id": finding.checkpoint_id,
        "site_id": finding.site_id,
        "subject": finding.subject,
        "summary": finding.summary[:500],
        "details": details,
        "dedup_key": finding.dedup_key,
        "open_key": finding.dedup_key,
        "status": AlertStatus.OPEN.value,
        "opened_at": now,
        "last_seen_at": now,
        "occurrences": 1,
        "silenced": silenced,
        "escalation_level": 0,
        "next_escalation_at": None if silenced else now + escalate_after,
    }
    statement = dialect_insert(conn, alert_t).values(**values)
    if repeat:
        statement = statement.on_conflict_do_update(
            index_elements=["open_key"],
            set_={"occurrences": alert_t.c.occurrences + 1, "last_seen_at": now},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["open_key"])
    row = conn.execute(
        statement.returning(alert_t.c.id, alert_t.c.occurrences, alert_t.c.silenced)
    ).first()
    if row is None:
        return None
    alert_id, occurrences, was_silenced = int(row[0]), int(row[1]), bool(row[2])
    created = occurrences == 1
    status = AlertStatus.OPEN.value
    if created:
        note = f"silenced by silence {silence_id}" if silenced else None
        add_history(conn, alert_id, AlertEvent.OPENED, status, now, note=note)
        if not silenced:
            enqueue(conn, alert_id, AlertEvent.OPENED, now)
    else:
        current = conn.execute(select(alert_t.c.status).where(alert_t.c.id == alert_id)).scalar()
        add_history(conn, alert_id, AlertEvent.REPEATED, str(current), now, note=f"#{occurrences}")
    return Raised(alert_id, created, was_silenced)


def resolve_open(
    conn: Connection,
    where: Any,
    now: datetime,
    actor: str,
    outcome: str,
    note: str | None = None,
) -> list[int]:
    """Resolve every unresolved alert matching `where`; returns their ids."""
    rows = conn.execute(
        update(alert_t)
        .where(where, alert_t.c.status != AlertStatus.RESOLVED.value)
        .values(
            status=AlertStatus.RESOLVED.value,
            open_key=None,
            resolved_at=now,
            resolved_by=actor,
            outcome=outcome,
            note=note,
            next_escalation_at=None,
        )
        .returning(alert_t.c.id, alert_t.c.silenced)
    ).all()
    for alert_id, silenced in rows:
        add_history(conn, alert_id, AlertEvent.RESOLVED, "resolved", now, actor, outcome)
        if not silenced:
            enqueue(conn, alert_id, AlertEvent.RESOLVED, now)
    return [int(r[0]) for r in rows]


def resolve_keys(
    conn: Connection, keys: list[str], now: datetime, outcome: str, note: str | None = None
) -> list[int]:
    if not keys:
        return []
    return resolve_open(conn, alert_t.c.open_key.in_(keys), now, SYSTEM, outcome, note)


def open_alerts_of(conn: Connection, types: list[str]) -> list[Any]:
    return list(
        conn.execute(
            select(alert_t).where(
                alert_t.c.type.in_(types), alert_t.c.status != AlertStatus.RESOLVED.value
            )
        ).all()
    )


def escalate_due(conn: Connection, now: datetime, delays: Any) -> list[int]:
    """Escalate open (not acknowledged) alerts whose time is up, once each per period."""
    due = conn.execute(
        select(alert_t.c.id, alert_t.c.severity).where(
            alert_t.c.status == AlertStatus.OPEN.value,
            alert_t.c.next_escalation_at <= now,
            alert_t.c.silenced.is_(False),
        )
    ).all()
    escalated = []
    for alert_id, severity in due:
        row = conn.execute(
            update(alert_t)
            .where(
                and_(
                    alert_t.c.id == alert_id,
                    alert_t.c.status == AlertStatus.OPEN.value,
                    alert_t.c.next_escalation_at <= now,
                )
            )
            .values(
                escalation_level=alert_t.c.escalation_level + 1,
                next_escalation_at=now + delays(severity),
            )
            .returning(alert_t.c.escalation_level)
        ).first()
        if row is None:
            continue  # acknowledged or resolved meanwhile
        add_history(conn, alert_id, AlertEvent.ESCALATED, "open", now, note=f"level {row[0]}")
        enqueue(conn, alert_id, AlertEvent.ESCALATED, now)
        escalated.append(int(alert_id))
    return escalated


def count_alerts(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(alert_t)).scalar_one())


def resolve_keys_by_id(
    conn: Connection, alert_id: int, now: datetime, outcome: str, note: str | None = None
) -> list[int]:
    return resolve_open(conn, alert_t.c.id == alert_id, now, SYSTEM, outcome, note)
