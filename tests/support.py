"""Test helpers that talk to real brokers and databases: publishing, waiting, and a
private `mosquitto` process for tests that need their own broker configuration."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text

from tests.conftest import free_port


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; return its value, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        time.sleep(interval)


def count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


class Publisher:
    """A device-like MQTT v5 client that publishes with QoS 1 and waits for PUBACKs."""

    def __init__(self, mqtt_url: str, client_id: str | None = None) -> None:
        parts = urlsplit(mqtt_url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-pub-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str | dict[str, Any], qos: int = 1) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def publish_many(self, messages: Iterable[tuple[str, bytes]], qos: int = 1) -> int:
        infos = [self.client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(30)
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def publisher(mqtt_url: str) -> Iterator[Publisher]:
    pub = Publisher(mqtt_url)
    try:
        yield pub
    finally:
        pub.close()


class Collector:
    """Subscribes and keeps every message received (topic, payload)."""

    def __init__(self, mqtt_url: str, topic: str) -> None:
        parts = urlsplit(mqtt_url)
        self.messages: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        time.sleep(0.2)  # let SUBACK arrive before the test publishes

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def private_broker(extra_config: str = "") -> Iterator[str]:
    """A `mosquitto` of our own on a free port; yields its mqtt:// URL."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        # mosquitto started as root drops to the `mosquitto` user, who must be able to
        # write its persistence file here
        Path(tmp).chmod(0o777)
        config = Path(tmp) / "mosquitto.conf"
        config.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {tmp}/\n"
            "max_queued_messages 0\n" + extra_config
        )
        process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until(lambda: _port_open(port), timeout=10)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def _port_open(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def child_pids(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc); [] once it has gone."""
    try:
        return [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except (FileNotFoundError, ProcessLookupError):
        return []


def tree_rss_kb(pid: int) -> int:
    """Resident memory of `pid` and all its descendants (ingest and its writer)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0  # gone in the meantime
    rss = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")]
    return sum(rss) + sum(tree_rss_kb(child) for child in child_pids(pid))
