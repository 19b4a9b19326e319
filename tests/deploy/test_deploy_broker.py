"""Delivery guarantees of mosquitto/mosquitto.conf, measured on a real `mosquitto`.

An ingest-like subscriber (MQTT v5, persistent session that never expires, shared
subscription) goes away; devices keep publishing QoS-1 messages; the broker is even
restarted. When the subscriber returns, every message must be there.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from services.deploy.mosquitto import (
    MosquittoProcess,
    adapt_config,
    mosquitto_binary,
    project_config_text,
    wait_for_port,
)
from services.deploy.provision import provision
from tests.support.env import free_port

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")

BACKLOG = 3000


class Setup:
    def __init__(self, tmp_path: Path, prefix: str, config_text: str) -> None:
        secrets = tmp_path / "secrets"
        provision(secrets, prefix, ["cp-001"])
        with (secrets / "credentials.csv").open(newline="") as handle:
            self.passwords = {row["username"]: row["password"] for row in csv.DictReader(handle)}
        self.port = free_port()
        config = adapt_config(
            config_text,
            port=self.port,
            data_dir=tmp_path,
            dynsec_file=secrets / "dynamic-security.json",
        )
        self.broker = MosquittoProcess(config, tmp_path, self.port).start()
        self.prefix = prefix
        self.ingest_id = "cpm-ingest-1"  # bound to its account

    def ingest(self) -> tuple[mqtt.Client, list[bytes]]:
        """Connect like ingest does: v5, clean_start=False, session never expires."""
        received: list[bytes] = []
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.ingest_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set("cpm-ingest-1", self.passwords["cpm-ingest-1"])
        client.on_message = lambda _c, _u, message: received.append(bytes(message.payload))
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 0xFFFFFFFF
        properties.ReceiveMaximum = 2000
        client.connect("127.0.0.1", self.port, clean_start=False, properties=properties)
        client.loop_start()
        return client, received

    def publish_backlog(self) -> None:
        device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cp-001", protocol=mqtt.MQTTv5)
        device.username_pw_set("cp-001", self.passwords["cp-001"])
        device.max_inflight_messages_set(100)
        device.max_queued_messages_set(0)
        device.connect("127.0.0.1", self.port)
        device.loop_start()
        topic = f"{self.prefix}/cp/cp-001/reading"
        infos = [device.publish(topic, str(n).encode(), qos=1) for n in range(BACKLOG)]
        for info in infos:
            info.wait_for_publish(30)
        device.disconnect()
        device.loop_stop()


def wait_until_quiet(received: list[bytes], want: int, quiet_s: float = 2.0) -> int:
    """Poll until `want` arrived, or nothing new came for `quiet_s` (some were dropped)."""
    last, last_change = -1, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(received) < want:
        if len(received) != last:
            last, last_change = len(received), time.monotonic()
        elif time.monotonic() - last_change > quiet_s:
            break
        time.sleep(0.02)
    return len(received)


def run_offline_backlog(setup: Setup, restart_broker: bool) -> set[bytes]:
    client, _ = setup.ingest()
    subscribed = threading.Event()
    client.on_subscribe = lambda *_args: subscribed.set()
    client.subscribe(f"$share/ingest/{setup.prefix}/cp/+/+", qos=1)
    assert subscribed.wait(10)
    client.disconnect()
    client.loop_stop()
    setup.publish_backlog()
    if restart_broker:
        setup.broker.stop()  # SIGTERM: mosquitto saves its database
        setup.broker.start()
    client, received = setup.ingest()
    wait_until_quiet(received, BACKLOG)
    client.disconnect()
    client.loop_stop()
    setup.broker.stop()
    return set(received)


def test_project_config_keeps_a_long_backlog_across_a_broker_restart(
    tmp_path: Path, topic_prefix: str
) -> None:
    setup = Setup(tmp_path, topic_prefix, project_config_text())
    got = run_offline_backlog(setup, restart_broker=True)
    assert got == {str(n).encode() for n in range(BACKLOG)}


def test_stock_mosquitto_defaults_drop_the_backlog_past_1000(
    tmp_path: Path, topic_prefix: str
) -> None:
    """Why the shipped file sets max_queued_messages: without it the backlog is cut."""
    stock = re.sub(r"(?m)^max_queued_(messages|bytes) .*$", "", project_config_text())
    setup = Setup(tmp_path, topic_prefix, stock)
    got = run_offline_backlog(setup, restart_broker=False)
    assert len(got) == 1000  # Mosquitto's default max_queued_messages


def test_embedded_broker_queues_for_an_ingest_in_its_mode(tmp_path: Path) -> None:
    """What `cpmon up` tells ingest on amqtt: MQTT 3.1.1, clean_session=False, a user
    name, a plain subscription: what is published while it is away is kept for it."""
    port = free_port()
    broker = subprocess.Popen(
        [sys.executable, "-m", "services.deploy.embedded_broker", "--port", str(port)]
    )
    try:
        wait_for_port("127.0.0.1", port, 30, broker)

        def ingest() -> tuple[mqtt.Client, list[bytes]]:
            received: list[bytes] = []
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id="t-ingest", protocol=mqtt.MQTTv311,
                clean_session=False,
            )  # fmt: skip
            client.username_pw_set("cpm-demo")
            client.on_message = lambda _c, _u, m: received.append(bytes(m.payload))
            subscribed = threading.Event()
            client.on_subscribe = lambda *_a: subscribed.set()
            client.on_connect = lambda c, *_a: c.subscribe("demo/cp/+/+", qos=1)
            client.connect("127.0.0.1", port)
            client.loop_start()
            assert subscribed.wait(10)
            return client, received

        client, _ = ingest()
        client.disconnect()
        client.loop_stop()
        device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-dev",
                             protocol=mqtt.MQTTv311)  # fmt: skip
        device.username_pw_set("cp-001")
        device.connect("127.0.0.1", port)
        device.loop_start()
        infos = [device.publish("demo/cp/cp-001/reading", str(n).encode(), qos=1)
                 for n in range(500)]  # fmt: skip
        for info in infos:
            info.wait_for_publish(30)
        # amqtt routes after it acknowledges: the device stays connected meanwhile
        client, received = ingest()
        assert wait_until_quiet(received, 500) == 500
        assert set(received) == {str(n).encode() for n in range(500)}
        for c in (client, device):
            c.disconnect()
            c.loop_stop()
    finally:
        broker.terminate()
        broker.wait(10)
