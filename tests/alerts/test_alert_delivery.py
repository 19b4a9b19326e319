"""Delivery through the real broker and a real HTTP receiver: signed webhooks that fail,
then recover; MQTT to the duty handhelds; a worker killed mid-delivery loses nothing;
and the whole path from a device's fever reading to the alert topic."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from services.alerts import lifecycle, signing
from services.alerts.service import AlertService
from services.core.models.alerts import DeliveryAttempt, WebhookRouteCreate
from services.core.protocol import ReadingMessage, device_topic, encode
from tests.support.alerts import add_reading, alerts, outbox
from tests.support.env import LOOPBACK_ALLOW, TEST_SECRET
from tests.support.webhooks import WebhookReceiver

FAST = {
    "alerts_poll_interval_s": 0.2,
    "alerts_timers_interval_s": 0.5,
    "alerts_delivery_interval_s": 0.05,
    "webhook_retry_base_s": 0.05,
    "webhook_retry_cap_s": 0.2,
}


@pytest.fixture
def secret() -> str:
    return signing.new_secret()


def add_route(engine: Engine, url: str, secret: str) -> int:
    with Session(engine) as session:
        route = lifecycle.create_route(
            session, WebhookRouteCreate(name="duty", url=url, secret=secret)
        )
        session.commit()
        assert route.id is not None
        return route.id


def wait_for(
    condition: Callable[[], bool], timeout: float = 20.0, step: Callable[[], Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def opened_alert_ids(receiver: WebhookReceiver) -> list[int]:
    return [
        r["body"]["data"]["id"] for r in receiver.accepted() if r["body"]["type"] == "alert.opened"
    ]


def test_a_failing_then_recovering_receiver_gets_every_alert_once_signed_in_order(
    seeded_engine: Engine, make_settings: Callable[..., Any], secret: str
) -> None:
    receiver = WebhookReceiver(secret, failures=4)
    try:
        add_route(seeded_engine, receiver.url, secret)
        for i in range(6):
            add_reading(
                seeded_engine,
                cp=("cp-001" if i % 2 else "cp-002"),
                temp_c=38.0 + i / 10,
                entry_msg_id=f"e{i}",
            )
        service = AlertService(make_settings(**FAST), seeded_engine)
        service.process()
        wait_for(lambda: len(receiver.accepted()) == 6, step=service.deliver)
        accepted = receiver.accepted()
        assert all(r["verified"] for r in receiver.received)
        assert len({r["id"] for r in accepted}) == 6  # every alert once
        ids = [a.id for a in alerts(seeded_engine)]
        assert sorted(opened_alert_ids(receiver)) == ids
        for cp in ("cp-001", "cp-002"):  # a checkpoint's alerts arrive in order
            seen = [
                r["body"]["data"]["id"]
                for r in accepted
                if r["body"]["data"]["checkpoint_id"] == cp
            ]
            assert seen == sorted(seen)
        with Session(seeded_engine) as session:
            # (the MQTT lanes fail too here: this test never connects the service)
            failed = session.scalar(
                select(func.count()).where(DeliveryAttempt.status_code == 503)  # type: ignore[arg-type]
            )
        assert failed == 4
        webhook_rows = [o for o in outbox(seeded_engine) if o.channel == "webhook"]
        assert all(o.state == "delivered" for o in webhook_rows)
        service.deliverer.close()
    finally:
        receiver.close()


def subscribe(prefix: str, received: list[tuple[str, dict[str, Any]]]) -> mqtt.Client:
    ready = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/alerts/+", qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, m: received.append((m.topic, json.loads(m.payload)))
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    assert ready.wait(10)
    return client


def test_alerts_reach_the_checkpoint_topic_over_mqtt(
    seeded_engine: Engine, make_settings: Callable[..., Any], topic_prefix: str, mqtt_url: str
) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    listener = subscribe(topic_prefix, received)
    service = AlertService(make_settings(**FAST), seeded_engine)
    service.start()
    try:
        add_reading(seeded_engine, cp="cp-012", temp_c=38.6)
        wait_for(lambda: len(received) == 1)  # the service's own timer finds the row
        topic, body = received[0]
        assert topic == f"{topic_prefix}/alerts/cp-012"
        assert body["type"] == "alert.opened" and body["data"]["type"] == "fever"
    finally:
        service.stop()
        listener.loop_stop()
        listener.disconnect()


def test_killing_the_worker_mid_delivery_loses_no_alert(
    seeded_engine: Engine,
    make_settings: Callable[..., Any],
    database_url: str,
    topic_prefix: str,
    secret: str,
) -> None:
    receiver = WebhookReceiver(secret, hold_s=1.0)
    try:
        add_route(seeded_engine, receiver.url, secret)
        for i in range(5):
            add_reading(seeded_engine, cp="cp-013", temp_c=38.0, entry_msg_id=f"k{i}")
        env = {
            **os.environ,
            "CPM_DATABASE_URL": database_url,
            "CPM_TOPIC_PREFIX": topic_prefix,
            "CPM_ID_HASH_SECRET": TEST_SECRET,
            "CPM_MQTT_URL": "mqtt://127.0.0.1:1883",
            "CPM_WEBHOOK_ALLOW_HOSTS": LOOPBACK_ALLOW,  # the receiver below
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "alerts", "--poll", "0.2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert receiver.in_flight.wait(30), "the worker never started delivering"
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        assert len(alerts(seeded_engine)) == 5  # stored before any delivery
        pending = [
            o for o in outbox(seeded_engine) if o.channel == "webhook" and o.state == "pending"
        ]
        assert pending, "the kill came after delivery finished: the test proved nothing"
        receiver.hold_s = 0.0
        service = AlertService(make_settings(**FAST), seeded_engine)
        wait_for(
            lambda: (
                sorted(set(opened_alert_ids(receiver))) == [a.id for a in alerts(seeded_engine)]
            ),
            step=service.deliver,
        )
        ids = [r["id"] for r in receiver.accepted()]
        assert len(set(ids)) == 5  # repeats, if any, carry the same webhook-id
        assert all(r["verified"] for r in receiver.received)
        service.deliverer.close()
    finally:
        receiver.close()


def test_device_fever_reading_to_alert_topic_end_to_end(
    seeded_engine: Engine, make_settings: Callable[..., Any], topic_prefix: str, mqtt_url: str
) -> None:
    from services.ingest.service import IngestService

    settings = make_settings()
    received: list[tuple[str, dict[str, Any]]] = []
    listener = subscribe(topic_prefix, received)
    ingest = IngestService(settings, seeded_engine)
    alert_service = AlertService(
        settings.model_copy(update={"alerts_poll_interval_s": 30}), seeded_engine
    )
    ingest.start()
    alert_service.start()
    device = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-dev-{uuid.uuid4().hex[:8]}"
    )
    try:
        device.connect("127.0.0.1", 1883)
        device.loop_start()
        reading = ReadingMessage.model_validate(
            {
                "msg_id": "fever-1",
                "ts": datetime.now(UTC).isoformat(),
                "temp_c": 38.7,
                "direction": "in",
            }
        )
        device.publish(
            device_topic(topic_prefix, "cp-020", "reading"), encode(reading), qos=1
        ).wait_for_publish(5)
        # poll_interval 30 s: only ingest's commit announcement can make this quick
        wait_for(lambda: len(received) == 1, timeout=15)
        topic, body = received[0]
        assert topic == f"{topic_prefix}/alerts/cp-020"
        assert body["data"]["type"] == "fever" and body["data"]["details"]["temp_c"] == 38.7
    finally:
        device.loop_stop()
        device.disconnect()
        alert_service.stop()
        ingest.stop()
        listener.loop_stop()
        listener.disconnect()
