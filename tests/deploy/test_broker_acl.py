"""The shipped broker configuration, for real: a `mosquitto` on a free port running
mosquitto/mosquitto.conf with credentials from `cpmon devices provision`."""

from __future__ import annotations

import csv
import queue
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from services.deploy.mosquitto import MosquittoProcess, adapt_config, project_config_text
from services.deploy.provision import provision
from tests.support.env import free_port

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="mosquitto is not installed",
)

CHECKPOINTS = ["cp-001", "cp-002", "cp-003"]


class Broker:
    def __init__(self, port: int, passwords: dict[str, str], process: MosquittoProcess):
        self.port = port
        self.passwords = passwords
        self.process = process


@pytest.fixture
def broker(tmp_path: Path, topic_prefix: str) -> Iterator[Broker]:
    secrets = tmp_path / "secrets"
    provision(secrets, topic_prefix, CHECKPOINTS, with_simulator=True)
    with (secrets / "credentials.csv").open(newline="") as handle:
        passwords = {row["username"]: row["password"] for row in csv.DictReader(handle)}
    port = free_port()
    config = adapt_config(
        project_config_text(),
        port=port,
        data_dir=tmp_path,
        password_file=secrets / "passwd",
        acl_file=secrets / "acl",
    )
    process = MosquittoProcess(config, tmp_path, port).start()
    yield Broker(port, passwords, process)
    process.stop()


class Client:
    """A paho MQTT v5 client that collects what it receives."""

    def __init__(self, port: int, username: str | None, password: str | None = None) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connected: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"t-{username}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connected.put(rc)
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put(rcs)
        self.disconnected = threading.Event()
        self.client.on_disconnect = lambda *_args: self.disconnected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.reason = self.connected.get(timeout=10)

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def publish_refused(self, topic: str, payload: bytes) -> None:
        """Mosquitto 2.0 answers a publish outside the client's rights by disconnecting it."""
        self.client.publish(topic, payload, qos=1)
        assert self.disconnected.wait(10), f"publish to {topic} was not refused"

    def next_message(self) -> tuple[str, bytes]:
        return self.received.get(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def login(broker: Broker, username: str) -> Client:
    client = Client(broker.port, username, broker.passwords[username])
    assert not client.reason.is_failure, f"{username} refused: {client.reason}"
    return client


def test_anonymous_and_wrong_passwords_are_refused(broker: Broker) -> None:
    anonymous = Client(broker.port, None)
    assert anonymous.reason.is_failure
    anonymous.close()
    wrong = Client(broker.port, "cp-001", "not-the-password")
    assert wrong.reason.is_failure
    wrong.close()
    stranger = Client(broker.port, "cp-999", broker.passwords["cp-001"])
    assert stranger.reason.is_failure
    stranger.close()


def test_device_cannot_publish_into_another_checkpoint(broker: Broker, topic_prefix: str) -> None:
    ingest = login(broker, "cpm-ingest")
    assert not ingest.subscribe(f"$share/ingest/{topic_prefix}/cp/+/+")[0].is_failure
    forgeries = [
        (f"{topic_prefix}/cp/cp-002/entry", b"forged"),
        (f"{topic_prefix}/alerts/cp-001", b"forged alert"),
        (f"{topic_prefix}/internal/committed", b"forged commit"),
    ]
    for topic, payload in forgeries:
        forger = login(broker, "cp-001")
        forger.publish_refused(topic, payload)
        forger.close()
    device = login(broker, "cp-001")
    device.publish(f"{topic_prefix}/cp/cp-001/entry", b"own")
    # Mosquitto is single-threaded and each forgery was refused before this message
    # was sent: had one been routed, it would have arrived first.
    assert ingest.next_message() == (f"{topic_prefix}/cp/cp-001/entry", b"own")
    assert ingest.received.empty()
    for client in (device, ingest):
        client.close()


def test_device_reads_only_its_own_alerts(broker: Broker, topic_prefix: str) -> None:
    device = login(broker, "cp-001")
    device.subscribe(f"{topic_prefix}/alerts/cp-002")
    device.subscribe(f"{topic_prefix}/alerts/+")
    device.subscribe(f"{topic_prefix}/cp/cp-002/entry")
    alerts = login(broker, "cpm-alerts")
    simulator = login(broker, "cpm-simulator")
    simulator.publish(f"{topic_prefix}/cp/cp-002/entry", b"not yours")
    alerts.publish(f"{topic_prefix}/alerts/cp-002", b"not yours")
    alerts.publish(f"{topic_prefix}/alerts/cp-001", b"yours")
    assert device.next_message() == (f"{topic_prefix}/alerts/cp-001", b"yours")
    assert device.received.empty()
    for client in (device, alerts, simulator):
        client.close()


def test_services_read_everything(broker: Broker, topic_prefix: str) -> None:
    readers = [login(broker, name) for name in ("cpm-ingest", "cpm-alerts", "cpm-api")]
    for reader in readers:
        assert not reader.subscribe(f"{topic_prefix}/#")[0].is_failure
    device = login(broker, "cp-003")
    alerts = login(broker, "cpm-alerts")
    ingest = login(broker, "cpm-ingest")
    sent = [
        (f"{topic_prefix}/cp/cp-003/reading", b"r"),
        (f"{topic_prefix}/cp/cp-003/status", b"s"),
    ]
    for topic, payload in sent:
        device.publish(topic, payload)
    alerts.publish(f"{topic_prefix}/alerts/cp-003", b"a")
    ingest.publish(f"{topic_prefix}/internal/committed", b"{}")
    sent += [(f"{topic_prefix}/alerts/cp-003", b"a"), (f"{topic_prefix}/internal/committed", b"{}")]
    for reader in readers:
        got = [reader.next_message() for _ in sent]
        assert sorted(got) == sorted(sent)
    # the compose health check logs in as the API and reads the broker's uptime
    api = readers[2]
    api.subscribe("$SYS/broker/uptime")
    assert api.next_message()[0] == "$SYS/broker/uptime"
    for client in (*readers, device, alerts, ingest):
        client.close()


def test_service_accounts_have_only_their_own_write_rights(
    broker: Broker, topic_prefix: str
) -> None:
    api = login(broker, "cpm-api")
    api.subscribe(f"{topic_prefix}/#")
    refused = [
        ("cpm-ingest", f"{topic_prefix}/alerts/cp-001"),
        ("cpm-api", f"{topic_prefix}/cp/cp-001/entry"),
        ("cpm-alerts", f"{topic_prefix}/cp/cp-001/entry"),
        ("cpm-simulator", f"{topic_prefix}/alerts/cp-001"),
    ]
    for username, topic in refused:
        writer = login(broker, username)
        writer.publish_refused(topic, b"not allowed")
        writer.close()
    ingest = login(broker, "cpm-ingest")
    ingest.publish(f"{topic_prefix}/internal/committed", b"ok")
    assert api.next_message() == (f"{topic_prefix}/internal/committed", b"ok")
    assert api.received.empty()
    for client in (api, ingest):
        client.close()


def test_rotation_applies_on_sighup_without_a_restart(
    broker: Broker, tmp_path: Path, topic_prefix: str
) -> None:
    old_password = broker.passwords["cp-002"]
    bystander = login(broker, "cp-001")
    provision(tmp_path / "secrets", topic_prefix, CHECKPOINTS, rotate=["cp-002"],
              with_simulator=True)  # fmt: skip
    with (tmp_path / "secrets" / "credentials.csv").open(newline="") as handle:
        new_password = next(r for r in csv.DictReader(handle) if r["username"] == "cp-002")[
            "password"
        ]
    assert broker.process.process is not None
    broker.process.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while True:  # the reload is asynchronous: poll until the old password stops working
        old = Client(broker.port, "cp-002", old_password)
        old.close()
        if old.reason.is_failure:
            break
        assert time.monotonic() < deadline, "old password still accepted after SIGHUP"
        time.sleep(0.1)
    rotated = Client(broker.port, "cp-002", new_password)
    assert not rotated.reason.is_failure
    rotated.close()
    # the other device's connection was not dropped by the reload
    assert bystander.client.is_connected()
    bystander.publish(f"{topic_prefix}/cp/cp-001/heartbeat", b"still here")
    bystander.close()
