"""MQTT in the tests: the one device-like publisher, a collecting subscriber, and
private `mosquitto` processes for tests that need their own broker configuration (or
to restart it)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.env import free_port
from tests.support.waiting import wait_until

NO_MATCHING_SUBSCRIBERS = 0x10


NO_MATCHING_SUBSCRIBERS = 0x10


class Device:
    """The one device-like MQTT v5 publisher of the tests (QoS 1).

    `publish` sends one message and waits for its PUBACK, `publish_many` a list and
    waits for all; `stream` sends without waiting, also while disconnected: paho keeps
    every unacknowledged message and sends it again after reconnecting. With
    `republish_unrouted` a PUBACK "no matching subscribers" (0x10: a broker just
    restarted, ingest not yet subscribed again) makes the device publish the message
    again shortly, as the protocol asks of devices.
    """

    def __init__(
        self,
        mqtt_url: str,
        client_id: str | None = None,
        *,
        inflight: int = 1000,
        republish_unrouted: bool = True,
    ) -> None:
        parts = urlsplit(mqtt_url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-dev-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)  # unbounded: the device's own buffer
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=1)
        self.republish_unrouted = republish_unrouted
        self.connected = threading.Event()
        self.client.on_connect = lambda *_: self.connected.set()
        self.client.on_disconnect = lambda *_: self.connected.clear()
        self.client.on_publish = self._on_publish
        self.published = 0
        self._acked = 0
        self._lock = threading.Lock()
        self._unacked: dict[int, tuple[str, bytes]] = {}  # mid -> message
        self._early: dict[int, Any] = {}  # PUBACK reasons that beat publish() back
        self.retried = 0
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()
        assert self.connected.wait(10), "the device could not connect"

    def publish(self, topic: str, payload: bytes | str | dict[str, Any], qos: int = 1) -> None:
        """One message; returns once the broker acknowledged it."""
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        data = payload.encode() if isinstance(payload, str) else payload
        self._send(topic, data, qos).wait_for_publish(10)
        self.published += 1

    def publish_many(self, messages: Iterable[tuple[str, bytes]], qos: int = 1) -> int:
        infos = [self._send(topic, payload, qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(30)
        self.published += len(infos)
        return len(infos)

    def stream(self, messages: list[tuple[str, bytes]], pace_every: int = 0) -> None:
        """Send without waiting (connected or not); `pace_every` n messages, a pause."""
        for n, (topic, payload) in enumerate(messages):
            # while disconnected this returns "not connected", but paho keeps the message
            # and sends it after reconnecting
            self._send(topic, payload)
            self.published += 1
            if pace_every and n % pace_every == pace_every - 1:
                time.sleep(0.01)  # a steady stream, not one burst

    def _send(self, topic: str, payload: bytes, qos: int = 1) -> mqtt.MQTTMessageInfo:
        # never hold our lock across publish(): paho calls on_publish under its own
        info = self.client.publish(topic, payload, qos=qos)
        if qos == 0:
            with self._lock:
                self._acked += 1
            return info
        with self._lock:  # the PUBACK may have come back before publish() returned
            early = self._early.pop(info.mid, None)
            if early is None:
                self._unacked[info.mid] = (topic, payload)
        if early is not None:
            self._settle(early, (topic, payload))
        return info

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            message = self._unacked.pop(mid, None)
            if message is None:
                self._early[mid] = reason
                return
        self._settle(reason, message)

    def _settle(self, reason: Any, message: tuple[str, bytes]) -> None:
        if reason == NO_MATCHING_SUBSCRIBERS and self.republish_unrouted:
            with self._lock:
                self.retried += 1
            threading.Timer(0.5, self._send, message).start()
            return
        with self._lock:
            self._acked += 1

    def acknowledged(self) -> int:
        return self._acked

    def wait_acknowledged(self, timeout: float = 120) -> None:
        wait_until(lambda: self.acknowledged() >= self.published, timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher(Device):
    """A device that takes "no matching subscribers" as final (most tests: nothing is
    published again after the test has looked)."""

    def __init__(self, mqtt_url: str, client_id: str | None = None) -> None:
        super().__init__(mqtt_url, client_id, republish_unrouted=False)


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


class Broker:
    """A `mosquitto` of our own: persistence on, no queue limit, a fixed port and
    persistence directory across restarts."""

    def __init__(self, directory: Path, config: str | None = None) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self.dir = directory
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {directory}/\n"
            + (
                "max_queued_messages 0\nmax_inflight_messages 0\n"
                f"log_dest file {directory}/mosquitto.log\nlog_type all\n"
                if config is None
                else config
            )
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), timeout=10)

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its persistence file and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.process = None


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@contextmanager
def private_broker(extra_config: str = "") -> Iterator[str]:
    """A `mosquitto` of our own on a free port, no queue limit; yields its mqtt:// URL."""
    with tempfile.TemporaryDirectory() as tmp:
        # mosquitto started as root drops to the `mosquitto` user, who must be able to
        # write its persistence file here
        Path(tmp).chmod(0o777)
        broker = Broker(Path(tmp), "max_queued_messages 0\n" + extra_config)
        broker.start()
        try:
            yield broker.url
        finally:
            broker.stop()
