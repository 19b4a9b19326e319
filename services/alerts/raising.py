"""Raising findings as alerts, a whole batch at a time, in the caller's transaction.

The statements do not grow in number with the batch: one silence look-up for all its
checkpoints, one upsert of every distinct dedup key (`INSERT ... ON CONFLICT (open_key)
... RETURNING`: from arrays on PostgreSQL, multi-row VALUES on SQLite; bulk.py), one
insert of the history rows and two statements for the outbox (outbox.enqueue_alerts:
the routes, the rows). The unique index on `open_key` still
decides between two workers: an alert another worker opened meanwhile comes back from
the upsert as a repeat, never as a second alert.

Same outcome as raising the findings one by one in their order: findings sharing a key
make one alert whose `occurrences` counts them, with an `opened` history row and a
`repeated` one per further finding; a silenced alert gets its history but no outbox rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select

from services.alerts.bulk import insert_rows, upsert_rows
from services.alerts.event_rules import Finding
from services.alerts.outbox import enqueue_alerts
from services.core.models.alerts import SEVERITY_RANK, AlertEvent, AlertStatus, Severity
from services.core.tables import alert_t, history_t, silence_t

SYSTEM = "system"
# what a newly inserted alert holds besides new_alert_row's values and its id
NEVER_SET = dict.fromkeys(
    ("acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "outcome", "note")
)
Place = tuple[str, str]  # (checkpoint, site)


@dataclass(frozen=True, slots=True)
class Raised:
    alert_id: int
    created: bool
    silenced: bool


def active_silences(conn: Connection, places: Iterable[Place], now: datetime) -> dict[Place, int]:
    """The silence (lowest id) covering each (checkpoint, site) now, in one query."""
    places = set(places)
    if not places:
        return {}
    checkpoints = sorted({cp for cp, _ in places})
    sites = sorted({site for _, site in places})
    s = silence_t.c
    rows = conn.execute(
        select(s.id, s.checkpoint_id, s.site_id)
        .where(
            or_(s.checkpoint_id.in_(checkpoints), s.site_id.in_(sites)),
            s.starts_at <= now,
            s.ends_at > now,
            s.lifted_at.is_(None),
        )
        .order_by(s.id)
    ).all()
    covering: dict[Place, int] = {}
    for place in places:
        for silence_id, checkpoint_id, site_id in rows:
            if checkpoint_id == place[0] or site_id == place[1]:
                covering[place] = int(silence_id)
                break
    return covering


def new_alert_row(
    finding: Finding, now: datetime, escalate_after: timedelta, silence_id: int | None, count: int
) -> dict[str, Any]:
    """The row an upsert inserts for a key not open yet, `count` findings at once."""
    details = dict(finding.details)
    if silence_id is not None:
        details["silence_id"] = silence_id
    return {
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
        "occurrences": count,
        "silenced": silence_id is not None,
        "escalation_level": 0,
        "next_escalation_at": None if silence_id is not None else now + escalate_after,
    }


def raise_findings(
    conn: Connection,
    findings: Sequence[Finding],
    now: datetime,
    escalate_after: Callable[[Severity], timedelta],
    *,
    repeat: bool = True,
) -> list[Raised | None]:
    """Open each finding's alert or count a repeat of the open one; one result per
    finding, in order. `repeat=False` (conditions re-found on every tick) leaves an open
    alert untouched and gives None for it (and for a second finding of the same key)."""
    if not findings:
        return []
    by_key: dict[str, list[int]] = {}
    for index, finding in enumerate(findings):
        by_key.setdefault(finding.dedup_key, []).append(index)
    silences = active_silences(conn, ((f.checkpoint_id, f.site_id) for f in findings), now)
    counts = {key: len(indexes) if repeat else 1 for key, indexes in by_key.items()}
    rows = []
    for key in sorted(by_key):  # one lock order for every worker (PostgreSQL)
        first = findings[by_key[key][0]]
        silence_id = silences.get((first.checkpoint_id, first.site_id))
        delay = escalate_after(first.severity)
        rows.append(new_alert_row(first, now, delay, silence_id, counts[key]))
    inserted = {row["open_key"]: row for row in rows}
    stored = {
        row.open_key: row
        for row in upsert_rows(
            conn,
            alert_t,
            rows,
            "open_key",
            add=("occurrences",) if repeat else (),
            replace=("last_seen_at",) if repeat else (),
            returning=("id", "open_key", "occurrences", "silenced", "status", "severity"),
        )
    }
    results: list[Raised | None] = [None] * len(findings)
    history: list[dict[str, Any]] = []
    opened: list[tuple[int, int]] = []  # (severity rank, alert id) to deliver
    new: dict[int, dict[str, Any]] = {}  # the alerts this upsert created, as stored
    for key, indexes in by_key.items():
        row = stored.get(key)
        if row is None:
            continue  # repeat=False and already open
        alert_id, silenced = int(row.id), bool(row.silenced)
        # the upsert inserted `count` occurrences, or added them to an open alert's
        created = row.occurrences == counts[key]
        first_number = row.occurrences - counts[key] + 1
        for n, index in enumerate(indexes[: counts[key]]):
            if created and n == 0:
                place = (findings[index].checkpoint_id, findings[index].site_id)
                note = f"silenced by silence {silences[place]}" if silenced else None
                history.append(history_row(alert_id, AlertEvent.OPENED, row.status, now, note))
                if not silenced:
                    opened.append((-SEVERITY_RANK.get(Severity(row.severity), 1), alert_id))
                    new[alert_id] = {**NEVER_SET, **inserted[key], "id": alert_id}
            else:
                note = f"#{first_number + n}"
                history.append(history_row(alert_id, AlertEvent.REPEATED, row.status, now, note))
            results[index] = Raised(alert_id, created and n == 0, silenced)
    if history:
        insert_rows(conn, history_t, history)
    # the most severe first: the deliverer sends in outbox id order
    queued = [alert_id for _, alert_id in sorted(opened)]
    enqueue_alerts(conn, queued, AlertEvent.OPENED, now, known=new)
    return results


def history_row(
    alert_id: int,
    action: AlertEvent,
    status: str,
    now: datetime,
    note: str | None = None,
    actor: str = SYSTEM,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "at": now,
        "action": action.value,
        "status": status,
        "actor": actor,
        "note": note,
    }
