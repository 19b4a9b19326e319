"""Alert writes, in the caller's transaction: open-or-repeat, resolve, history.

Every change is a single conditional statement (an upsert on `open_key`, an UPDATE
guarded by the current status), so two workers, or a worker and the API, never race:
the database decides who wins and the loser sees zero rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, select, update

from services.alerts.bulk import insert_rows
from services.alerts.event_rules import Finding
from services.alerts.outbox import enqueue_alerts
from services.alerts.raising import SYSTEM, Raised, active_silences, history_row, raise_findings
from services.core.models.alerts import (
    AlertEvent,
    AlertStatus,
)
from services.core.tables import alert_t, history_t, silence_t

__all__ = ["SYSTEM", "Raised", "active_silence", "add_history", "raise_alert", "silence_t"]


def active_silence(conn: Connection, checkpoint_id: str, site_id: str, now: datetime) -> int | None:
    """The id of a silence covering this checkpoint (or its site) now, if any."""
    return active_silences(conn, [(checkpoint_id, site_id)], now).get((checkpoint_id, site_id))


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
    escalate_after: timedelta,
    *,
    repeat: bool = True,
) -> Raised | None:
    """Open the finding's alert, or count a repeat of the open one: a batch of one
    (raising.raise_findings, which says what `repeat=False` does)."""
    return raise_findings(conn, [finding], now, lambda _: escalate_after, repeat=repeat)[0]


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
    # the history and outbox rows of all of them in three statements, not four per alert
    insert_rows(
        conn,
        history_t,
        [history_row(r[0], AlertEvent.RESOLVED, "resolved", now, outcome, actor) for r in rows],
    )
    enqueue_alerts(conn, [r[0] for r in rows if not r[1]], AlertEvent.RESOLVED, now)
    return [int(r[0]) for r in rows]


def resolve_keys(
    conn: Connection, keys: list[str], now: datetime, outcome: str, note: str | None = None
) -> list[int]:
    if not keys:
        return []
    return resolve_open(conn, alert_t.c.open_key.in_(keys), now, SYSTEM, outcome, note)


def open_alerts_of(conn: Connection, types: list[str]) -> list[Any]:
    """Unresolved alerts of these types, read through the partial index of open alerts
    (`ix_alert_open_type`), not through the whole table and its history of resolved
    alerts (the re-check looks for open fevers on every batch of readings; the timed
    rules for their types on every tick)."""
    return list(
        conn.execute(
            select(alert_t).where(alert_t.c.type.in_(types), alert_t.c.open_key.is_not(None))
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
    if not due:
        return []
    # one guarded UPDATE for all of them (a flood of alerts comes due together), the
    # next time by severity; an alert acknowledged or resolved meanwhile is left out
    next_at = case(
        *((alert_t.c.severity == sev, now + delays(sev)) for sev in sorted({r[1] for r in due})),
        else_=alert_t.c.next_escalation_at,
    )
    levels: dict[int, int] = dict(
        conn.execute(
            update(alert_t)
            .where(
                and_(
                    alert_t.c.id.in_([r[0] for r in due]),
                    alert_t.c.status == AlertStatus.OPEN.value,
                    alert_t.c.next_escalation_at <= now,
                )
            )
            .values(escalation_level=alert_t.c.escalation_level + 1, next_escalation_at=next_at)
            .returning(alert_t.c.id, alert_t.c.escalation_level)
        ).all()
    )
    escalated = [int(alert_id) for alert_id, _ in due if alert_id in levels]
    insert_rows(
        conn,
        history_t,
        [
            history_row(a, AlertEvent.ESCALATED, "open", now, f"level {levels[a]}")
            for a in escalated
        ],
    )
    enqueue_alerts(conn, escalated, AlertEvent.ESCALATED, now)
    return escalated


def count_alerts(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(alert_t)).scalar_one())


def resolve_keys_by_id(
    conn: Connection, alert_id: int, now: datetime, outcome: str, note: str | None = None
) -> list[int]:
    return resolve_open(conn, alert_t.c.id == alert_id, now, SYSTEM, outcome, note)
