"""Scenario 7: a webhook receiver is down for 10 minutes (nothing listening on its port),
then comes back: every alert event reaches it once (by `webhook-id`), signed, in order
per checkpoint.

Ten real minutes are too long for CI, so the alert service runs on an injected clock
that the test moves in 5-second steps (CPM_RELIABILITY_WEBHOOK_DOWN_S simulated seconds,
default 600): alerts keep opening and resolving during the outage, and the deliverer's
real retry policy (exponential backoff with jitter, capped at 5 min) decides when it
tries again. The receiver, the HTTP requests, the database and the broker are real.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from services.alerts import lifecycle, signing
from services.alerts.notifiers import MqttNotifier, WebhookNotifier
from services.alerts.service import AlertService
from services.core.db import utcnow
from services.core.models.alerts import WebhookRouteCreate
from tests.support.alerts import Clock, add_reading, outbox
from tests.support.env import MQTT_URL, free_port
from tests.support.reliability import db_name, env_float, record
from tests.support.webhooks import LOOPBACK_EGRESS, WebhookReceiver

DOWN_S = env_float("CPM_RELIABILITY_WEBHOOK_DOWN_S", 600)
STEP_S = 5.0
CHECKPOINTS = ("cp-021", "cp-022", "cp-023")


@pytest.mark.slow
def test_webhook_receiver_down_ten_minutes_gets_every_alert_once_in_order(
    seeded_engine: Engine, database_url: str, make_settings: Callable[..., Any], topic_prefix: str
) -> None:
    clock = Clock(utcnow())
    secret = signing.new_secret()
    receiver = WebhookReceiver(secret, start=False)  # down
    with Session(seeded_engine) as session:
        lifecycle.create_route(
            session, WebhookRouteCreate(name="duty", url=receiver.url, secret=secret)
        )
        session.commit()
    broker = urlsplit(MQTT_URL)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"rel-alerts-{free_port()}")
    client.connect(broker.hostname or "127.0.0.1", broker.port or 1883)
    client.loop_start()
    service = AlertService(
        make_settings(),  # the shipped retry policy: 1 s doubling to 5 min
        seeded_engine,
        clock=clock,
        notifiers={
            "mqtt": MqttNotifier(client, topic_prefix),
            "webhook": WebhookNotifier(egress=LOOPBACK_EGRESS),
        },
    )

    def step() -> None:
        clock.advance(STEP_S)
        service.process()
        service.deliver()

    def webhook_rows() -> list[Any]:
        return [o for o in outbox(seeded_engine) if o.channel == "webhook"]

    try:
        fevers = 0
        elapsed = 0.0
        while elapsed < DOWN_S:  # alerts open (and some resolve) while the receiver is down
            if elapsed % 30 == 0:
                cp = CHECKPOINTS[fevers % len(CHECKPOINTS)]
                add_reading(
                    seeded_engine, cp=cp, ts=clock.now, temp_c=38.2, entry_msg_id=f"w{fevers}"
                )
                if fevers % 2 == 1:  # the previous one's re-check is normal: resolved
                    earlier = CHECKPOINTS[(fevers - 1) % len(CHECKPOINTS)]
                    add_reading(
                        seeded_engine,
                        cp=earlier,
                        ts=clock.now,
                        temp_c=36.6,
                        entry_msg_id=f"w{fevers - 1}",
                        # the handheld names who re-checked: a fever case is then decided
                        operator=f"st-{earlier[3:]}-1",
                    )
                fevers += 1
            step()
            elapsed += STEP_S
        failed_attempts = service.deliverer.failed_attempts
        assert not receiver.received
        receiver.start()
        back = clock.now
        while any(o.state == "pending" for o in webhook_rows()):
            step()
            assert (clock.now - back).total_seconds() < 3600, "not delivered within an hour"
        recovery_s = (clock.now - back).total_seconds()
    finally:
        receiver.stop()
        service.deliverer.close()
        service.webhooks.close()
        client.loop_stop()
        client.disconnect()
    rows = webhook_rows()
    ids = [r["id"] for r in receiver.received]
    wanted = {o.message_id for o in rows}
    order_ok = True
    for cp in CHECKPOINTS:
        lane = [o.message_id for o in rows if o.checkpoint_id == cp]  # outbox id order
        arrived = [
            i
            for i, r in zip(ids, receiver.received, strict=True)
            if r["body"]["data"]["checkpoint_id"] == cp
        ]
        order_ok &= arrived == lane
    events = Counter(r["body"]["type"] for r in receiver.received)
    record(
        scenario="7",
        database=db_name(database_url),
        sent=len(wanted),
        stored=len(wanted & set(ids)),
        lost=len(wanted - set(ids)),
        doubled=len(ids) - len(set(ids)),
        recovery_s=recovery_s,
        notes=f"simulated clock: receiver down {DOWN_S:.0f} s, {failed_attempts} failed "
        f"attempts meanwhile; events {dict(events)}; recovery (simulated) = receiver back "
        f"to all delivered, bounded by the 5-min backoff cap; in order per checkpoint: "
        f"{'yes' if order_ok else 'NO'}",
    )
    assert failed_attempts > 0
    assert wanted == set(ids), "an alert event never arrived"
    assert len(ids) == len(set(ids)), "an event arrived twice"
    assert all(r["verified"] for r in receiver.received)
    assert order_ok
    assert all(o.state == "delivered" for o in rows)
    assert events["alert.resolved"] > 0 and events["alert.opened"] == fevers
