"""The durable outbox: which messages an alert change produces, and for whom.

`enqueue` runs in the transaction that changes the alert, so the change and the promise
to deliver it commit together. Each message gets a lane (`channel:route:checkpoint`);
the deliverer sends a lane strictly in id order.

The message body follows the Standard Webhooks shape: `{"type": "alert.opened",
"timestamp": ..., "data": {alert}}`, the same bytes on MQTT and webhooks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from services.alerts.bulk import insert_rows
from services.core.models.alerts import (
    SEVERITY_RANK,
    AlertEvent,
    Severity,
)
from services.core.tables import alert_t, outbox_t, route_t

MQTT = "mqtt"
WEBHOOK = "webhook"

PUBLIC_FIELDS = (
    "id",
    "type",
    "severity",
    "status",
    "checkpoint_id",
    "site_id",
    "subject",
    "summary",
    "details",
    "opened_at",
    "last_seen_at",
    "occurrences",
    "acknowledged_at",
    "acknowledged_by",
    "resolved_at",
    "resolved_by",
    "outcome",
    "note",
    "escalation_level",
)


@dataclass(frozen=True, slots=True)
class RouteFilter:
    id: int
    site_id: str | None
    checkpoint_id: str | None
    min_severity: str
    types: list[str] | None
    escalation: bool
    enabled: bool = True


def route_matches(
    route: RouteFilter,
    *,
    alert_type: str,
    severity: str,
    site_id: str,
    checkpoint_id: str,
    event: AlertEvent,
    escalated: bool,
) -> bool:
    """Duty routes get every event of the alerts they filter for; supervisors' routes
    get escalations, and the acknowledgement/resolution of alerts that escalated."""
    if not route.enabled:
        return False
    if route.site_id is not None and route.site_id != site_id:
        return False
    if route.checkpoint_id is not None and route.checkpoint_id != checkpoint_id:
        return False
    if route.types is not None and alert_type not in route.types:
        return False
    minimum = SEVERITY_RANK.get(Severity(route.min_severity), 1)
    if SEVERITY_RANK.get(Severity(severity), 1) < minimum:
        return False
    if route.escalation:
        return event == AlertEvent.ESCALATED or (
            escalated and event in (AlertEvent.ACKNOWLEDGED, AlertEvent.RESOLVED)
        )
    return event != AlertEvent.ESCALATED


def message_body(alert: Mapping[str, Any], event: AlertEvent, now: datetime) -> str:
    data = {name: _jsonable(alert[name]) for name in PUBLIC_FIELDS}
    body = {"type": f"alert.{event.value}", "timestamp": now.isoformat(), "data": data}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _routes(conn: Connection) -> Iterable[RouteFilter]:
    for row in conn.execute(select(route_t).where(route_t.c.enabled.is_(True))).mappings():
        yield RouteFilter(
            id=row["id"],
            site_id=row["site_id"],
            checkpoint_id=row["checkpoint_id"],
            min_severity=row["min_severity"],
            types=row["types"],
            escalation=row["escalation"],
        )


def outbox_row(
    channel: str,
    route_id: int | None,
    alert_id: int | None,
    checkpoint_id: str,
    lane_subject: str,
    event: str,
    body: str,
    now: datetime,
) -> dict[str, Any]:
    """One pending outbox row: alert messages and announcements (announce.py) alike."""
    return {
        "channel": channel,
        "route_id": route_id,
        "alert_id": alert_id,
        "checkpoint_id": checkpoint_id,
        "lane": f"{channel}:{route_id or ''}:{lane_subject}",
        "event": event,
        "payload": body,
        "message_id": "msg_" + uuid.uuid4().hex,
        "state": "pending",
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
    }


def enqueue(conn: Connection, alert_id: int, event: AlertEvent, now: datetime) -> int:
    """Queue `event` of the alert on MQTT and every matching webhook route."""
    return enqueue_alerts(conn, [alert_id], event, now)


def enqueue_alerts(
    conn: Connection,
    alert_ids: Sequence[int],
    event: AlertEvent,
    now: datetime,
    known: Mapping[int, Mapping[str, Any]] | None = None,
) -> int:
    """Queue `event` of each alert, in the order given, with three statements however
    many alerts: the alerts as stored (unless `known` has them all, as the batch that
    just inserted them does), the routes, one multi-row insert."""
    if not alert_ids:
        return 0
    stored: Mapping[int, Mapping[str, Any]]
    if known is not None and all(alert_id in known for alert_id in alert_ids):
        stored = known
    else:
        stored = {  # Row._asdict: a RowMapping builds its keys anew for every row
            row.id: row._asdict()
            for row in conn.execute(select(alert_t).where(alert_t.c.id.in_(list(alert_ids))))
        }
    routes = list(_routes(conn))
    rows: list[dict[str, Any]] = []
    for alert_id in alert_ids:
        alert = stored[alert_id]
        body = message_body(alert, event, now)
        checkpoint_id = alert["checkpoint_id"]
        targets: list[tuple[str, int | None]] = [(MQTT, None)]
        targets += [
            (WEBHOOK, route.id)
            for route in routes
            if route_matches(
                route,
                alert_type=alert["type"],
                severity=alert["severity"],
                site_id=alert["site_id"],
                checkpoint_id=checkpoint_id,
                event=event,
                escalated=alert["escalation_level"] > 0,
            )
        ]
        rows += [
            outbox_row(
                channel, route_id, alert_id, checkpoint_id, checkpoint_id, event.value, body, now
            )
            for channel, route_id in targets
        ]
    insert_rows(conn, outbox_t, rows)
    return len(rows)
