"""A real `mosquitto` running the production configuration (mosquitto/mosquitto.conf,
rewritten only for ports and paths) with accounts from `cpmon devices provision`, and
a small MQTT v5 client that records what the broker answers."""

from __future__ import annotations

import csv
import queue
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from services.deploy.mosquitto import (
    MosquittoProcess,
    TlsListener,
    adapt_config,
    project_config_text,
)
from services.deploy.provision import provision
from services.deploy.tls import TlsFiles, provision_tls
from tests.support.env import free_port

CHECKPOINTS = ["cp-001", "cp-002", "cp-003"]


@dataclass
class SecureBroker:
    port: int
    tls_port: int
    secrets: Path
    tls: TlsFiles
    passwords: dict[str, str]
    process: MosquittoProcess

    def url(self, username: str, tls: bool = False) -> str:
        scheme, port = ("mqtts", self.tls_port) if tls else ("mqtt", self.port)
        return f"{scheme}://{username}:{self.passwords[username]}@localhost:{port}"

    def reload_passwords(self) -> None:
        self.passwords = read_passwords(self.secrets)


def read_passwords(secrets: Path) -> dict[str, str]:
    with (secrets / "credentials.csv").open(newline="") as handle:
        return {row["username"]: row["password"] for row in csv.DictReader(handle)}


def start_secure_broker(workdir: Path, prefix: str, checkpoints: list[str]) -> SecureBroker:
    secrets = workdir / "secrets"
    provision(secrets, prefix, checkpoints)
    tls = provision_tls(secrets / "certs", ["localhost", "127.0.0.1"])
    port, tls_port = free_port(), free_port()
    config = adapt_config(
        project_config_text(),
        port=port,
        data_dir=workdir,
        dynsec_file=secrets / "dynamic-security.json",
        tls=TlsListener(tls_port, tls.server_cert, tls.server_key),
    )
    process = MosquittoProcess(config, workdir, port).start()
    return SecureBroker(port, tls_port, secrets, tls, read_passwords(secrets), process)


class Client:
    """A paho MQTT v5 client that collects what it receives and what it is told."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None = None,
        client_id: str | None = None,
        ca_file: Path | None = None,
        persistent: bool = False,
    ) -> None:
        self.received: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.connected: queue.Queue[tuple[ReasonCode, bool]] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.pubacks: dict[int, ReasonCode] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id if client_id is not None else username or "",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = lambda _c, _u, flags, rc, _p: self.connected.put(
            (rc, bool(flags.session_present))
        )
        self.client.on_message = lambda _c, _u, m: self.received.put(
            (m.topic, bytes(m.payload), bool(m.retain))
        )
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put(rcs)
        self.client.on_publish = self._on_publish
        self.disconnected = threading.Event()
        self.client.on_disconnect = lambda *_args: self.disconnected.set()
        properties = None
        if persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 0xFFFFFFFF
        self.client.connect(
            "localhost" if ca_file else "127.0.0.1",
            port,
            clean_start=not persistent,
            properties=properties,
        )
        self.client.loop_start()
        self.reason, self.session_present = self.connected.get(timeout=10)

    def _on_publish(self, _c: object, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        self.pubacks[mid] = rc

    @property
    def refused(self) -> bool:
        return self.reason.is_failure

    def subscribe(self, topic: str) -> ReasonCode:
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=10)[0]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> ReasonCode | None:
        """Publish with QoS 1; the broker's PUBACK reason, or None when it disconnected
        the client instead (Mosquitto 2.0 answers a publish outside the client's rights,
        or over message_size_limit, by disconnecting it)."""
        self.disconnected.clear()
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if info.mid in self.pubacks:
                return self.pubacks[info.mid]
            if self.disconnected.is_set():
                self.close()  # or paho would send it again on every reconnect
                return None
            time.sleep(0.01)
        raise AssertionError(f"the broker neither acknowledged nor refused {topic}")

    def drain(
        self, quiet_s: float = 0.5, expect: int = 0, timeout_s: float = 15.0
    ) -> list[tuple[str, bytes, bool]]:
        """What arrived: at least `expect` messages (waiting up to `timeout_s` for them,
        as a loaded machine may deliver late), then anything more until `quiet_s` of
        silence, so an extra delivery is still seen."""
        got = []
        deadline = time.monotonic() + timeout_s
        while len(got) < expect and time.monotonic() < deadline:
            try:
                got.append(self.received.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        while True:
            try:
                got.append(self.received.get(timeout=quiet_s))
            except queue.Empty:
                return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
