""" "Send a test message": one real request to a route's receiver, and its answer.

A robot's test request counts against its rate budget like any other (`robot_send`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from services.alerts.egress import EgressPolicy
from services.alerts.notifiers import DeliveryResult, OutboundMessage, WebhookNotifier
from services.alerts.robots import make_notifiers, render
from services.alerts.robots.common import ROBOT_KINDS, RobotRoute
from services.alerts.robots.messages import Context, probe_card
from services.core.tables import robot_send_t


def send_test(
    conn: Connection,
    route: dict[str, Any],
    ctx: Context,
    now: datetime,
    egress: EgressPolicy,
    timeout_s: float = 5.0,
) -> DeliveryResult:
    message_id = "msg_test_" + uuid.uuid4().hex
    if route["kind"] not in ROBOT_KINDS:
        body = {
            "type": "webhook.test",
            "timestamp": now.isoformat(),
            "data": {"route_id": route["id"], "name": route["name"]},
        }
        webhook = WebhookNotifier(timeout_s=timeout_s, egress=egress)
        try:
            return webhook.deliver(_outbound(route, message_id, json.dumps(body).encode()))
        finally:
            webhook.close()
    robot = RobotRoute.from_row(route)
    notifiers = make_notifiers(timeout_s=timeout_s, egress=egress)
    try:
        payload = render(probe_card(robot.name, ctx, robot.language), robot)
        result = notifiers[robot.kind].deliver(_outbound(route, message_id, payload))
    finally:
        for notifier in notifiers.values():
            notifier.close()
    conn.execute(
        insert(robot_send_t).values(
            route_id=robot.id,
            at=now,
            summary=False,
            outbox_ids=[],
            ok=result.ok,
            retryable=result.retryable,
            status_code=result.status_code,
            robot_code=result.receiver_code,
            error=(result.error or None) and result.error[:500],
            duration_ms=0.0,
        )
    )
    return result


def _outbound(route: dict[str, Any], message_id: str, body: bytes) -> OutboundMessage:
    return OutboundMessage(
        outbox_id=0,
        channel=str(route["kind"]),
        checkpoint_id="",
        message_id=message_id,
        event="test",
        body=body,
        url=route["url"],
        secret=route["secret"],
    )
