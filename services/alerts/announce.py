"""Announcements that are no alert (the daily report), through the same outbox.

An announcement is queued, in the caller's transaction, to every enabled *standard*
webhook route that is community-wide (no site, no checkpoint), not a supervisors'
escalation route, and whose `types` names the announcement (`daily_report`): opt-in,
since a receiver written for alert messages should not get another shape unasked.
The deliverer then signs and sends it like an alert message, with retries and the
attempts recorded; its outbox row has no alert (`alert_id` NULL) and a
lane of its own per route (`webhook:<route>:report`), so it never waits behind a
checkpoint's alerts. Group robots (WeCom, DingTalk, Feishu) render alert cards and
are not sent announcements.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from services.alerts.outbox import WEBHOOK, outbox_row
from services.core.tables import outbox_t, route_t

DAILY_REPORT = "daily_report"
ANNOUNCEMENTS = frozenset({DAILY_REPORT})  # what a route's `types` may name besides alerts
LANE_SUBJECT = "report"


def announcement_routes(conn: Connection, topic: str) -> list[int]:
    """Ids of the routes an announcement of `topic` goes to (see the module doc)."""
    t = route_t.c
    rows = conn.execute(
        select(t.id, t.types)
        .where(
            t.enabled.is_(True),
            t.kind == "standard",
            t.escalation.is_(False),
            t.site_id.is_(None),
            t.checkpoint_id.is_(None),
        )
        .order_by(t.id)
    ).all()
    return [route_id for route_id, types in rows if types and topic in types]


def announcement_body(event_type: str, data: dict[str, Any], now: datetime) -> str:
    """The Standard Webhooks shape the alert messages have: type, timestamp, data."""
    body = {"type": event_type, "timestamp": now.isoformat(), "data": data}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def enqueue_announcement(
    conn: Connection, topic: str, event_type: str, data: dict[str, Any], now: datetime
) -> int:
    """Queue the announcement on every matching route; returns how many."""
    routes = announcement_routes(conn, topic)
    if not routes:
        return 0
    body = announcement_body(event_type, data, now)
    rows = [
        outbox_row(WEBHOOK, route_id, None, "", LANE_SUBJECT, event_type[:16], body, now)
        for route_id in routes
    ]
    conn.execute(insert(outbox_t), rows)
    return len(routes)
