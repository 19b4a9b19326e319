"""The devices' MQTT connections: one paho client per checkpoint, one thread for all.

Each device is a separate MQTT v5 client (its own client id and, when given, its own
credentials) with a retained offline status as its will. Rather than a network thread
per client, all sockets share one selector loop driven by the simulation thread
(paho's `loop_read` / `loop_write` / `loop_misc`), so publishing needs no locks and 102
devices cost one thread.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import selectors
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from services.core.mqtt import paho_client
from services.core.settings import MqttEndpoint

log = logging.getLogger(__name__)
KEEPALIVE_S = 30
CONNECT_TIMEOUT_S = 10.0
INFLIGHT = 200  # QoS-1 messages a device may have unacknowledged


class NetworkError(RuntimeError):
    """The broker refused a device, or could not be reached in time."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


ANY_DEVICE = "*"  # credentials every device without its own uses


def read_credentials(path: str | Path) -> dict[str, Credentials]:
    """Per-device broker credentials from a CSV file, in one of two layouts:

    - `checkpoint_id,username,password` (a header line is optional);
    - the `credentials.csv` of `cpmon devices provision` (`username,password,role,...`):
      a `device` row's username is its checkpoint id (a revoked one, with no password,
      is left out), and a `cpm-simulator` row, when present (an older file), serves
      every device that has no row of its own.
    """
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row and not row[0].lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"{path}: no credentials in the file")
    header = [cell.strip().lower() for cell in rows[0]]
    result: dict[str, Credentials] = {}
    if "role" in header and "username" in header and "password" in header:
        user, password, role = (header.index(n) for n in ("username", "password", "role"))
        for row in rows[1:]:
            cells = [cell.strip() for cell in row] + [""] * len(header)
            if cells[role] == "device" and cells[password]:
                result[cells[user]] = Credentials(cells[user], cells[password])
            elif cells[user] == "cpm-simulator":
                result[ANY_DEVICE] = Credentials(cells[user], cells[password])
        return result
    if header[:1] == ["checkpoint_id"]:
        rows = rows[1:]
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if len(cells) != 3 or not all(cells):
            raise ValueError(f"{path}: row {number}: expected checkpoint_id,username,password")
        result[cells[0]] = Credentials(cells[1], cells[2])
    return result


def device_client_id(checkpoint_id: str, credentials: dict[str, Credentials], template: str) -> str:
    """A device with an account of its own connects as that account: the broker binds
    every account to one client id, its username (docs/architecture.md)."""
    own = credentials.get(checkpoint_id)
    return own.username if own is not None else template.format(checkpoint_id=checkpoint_id)


NO_MATCHING_SUBSCRIBERS = 0x10  # PUBACK reason: the broker delivered it to nobody
NO_SUBSCRIBER_RETRY_S = 1.0
NO_SUBSCRIBER_TRIES = 10  # then the message is counted undelivered


class DeviceLink:
    """One checkpoint's connection."""

    def __init__(
        self,
        checkpoint_id: str,
        client_id: str,
        endpoint: MqttEndpoint,
        credentials: Credentials | None,
        ca_file: str | None,
        network: DeviceNetwork,
        protocol: str = "5",
    ) -> None:
        self.checkpoint_id = checkpoint_id
        self.endpoint = endpoint
        self.network = network
        self.connected = False
        self.dropped_at = 0.0  # time.monotonic() of the last abrupt drop
        self.refused: str | None = None
        self.pending: dict[int, tuple[str, bytes, int]] = {}  # mid -> topic, payload, tries
        self.retries: list[tuple[float, str, bytes, int]] = []  # due, topic, payload, tries
        self.undelivered = 0  # given up after NO_SUBSCRIBER_TRIES answers of 0x10
        client = paho_client(client_id, protocol)
        if credentials is not None:
            client.username_pw_set(credentials.username, credentials.password)
        elif endpoint.username:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls:
            client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.max_inflight_messages_set(INFLIGHT)
        client.max_queued_messages_set(0)  # unlimited: paho holds what the socket cannot take
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        self.client = client

    # --- paho callbacks (run inside loop_read/loop_write on the simulation thread) ----
    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        else:
            self.connected = True

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected = False

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        message = self.pending.pop(mid, None)
        if message is None or reason != NO_MATCHING_SUBSCRIBERS:
            return
        # the broker delivered it to nobody (e.g. just restarted, ingest not subscribed
        # again yet): as the protocol asks of a device, publish it again shortly
        topic, payload, tries = message
        if tries < NO_SUBSCRIBER_TRIES:
            self.retries.append((time.monotonic() + NO_SUBSCRIBER_RETRY_S, topic, payload, tries))
        else:
            self.undelivered += 1

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self.network.selector.register(sock, selectors.EVENT_READ, self)

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.network.selector.unregister(sock)

    # --- what the simulation asks of a device ------------------------------------------
    def connect(self, will_topic: str, will_payload: bytes) -> None:
        """Connect (blocking for the TCP handshake only); the CONNACK arrives via pump."""
        self.refused = None
        self.client.will_set(will_topic, will_payload, qos=1, retain=True)
        try:
            self.client.connect(self.endpoint.host, self.endpoint.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            raise NetworkError(
                f"{self.checkpoint_id}: cannot reach {self.endpoint!r}: {exc}"
            ) from exc

    def publish(self, topic: str, payload: bytes, retain: bool = False, tries: int = 0) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise NetworkError(
                f"{self.checkpoint_id}: publish failed: {mqtt.error_string(info.rc)}"
            )
        # NO_CONN: paho keeps the QoS-1 message and sends it after the next CONNACK.
        # A retained message is kept by the broker even with no subscriber: no retry.
        self.pending[info.mid] = (topic, payload, NO_SUBSCRIBER_TRIES if retain else tries + 1)

    def republish_due(self, now: float) -> None:
        due = [r for r in self.retries if r[0] <= now]
        if due:
            self.retries = [r for r in self.retries if r[0] > now]
            for _due, topic, payload, tries in due:
                self.publish(topic, payload, tries=tries)

    def drop(self) -> None:
        """Kill the connection without a DISCONNECT packet: the broker publishes the will."""
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # paho sees the closed socket on its next read and reports the connection lost
        self.client.loop_read()
        self.connected = False

    def disconnect(self) -> None:
        self.client.disconnect()
        self.connected = False


class DeviceNetwork:
    """All devices' sockets in one selector, pumped by the simulation thread."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        checkpoint_ids: Iterable[str],
        client_id_template: str = "sim-{checkpoint_id}",
        credentials: dict[str, Credentials] | None = None,
        ca_file: str | None = None,
        protocol: str = "5",
    ) -> None:
        self.selector = selectors.DefaultSelector()
        credentials = credentials or {}
        self.links = {
            cp_id: DeviceLink(
                cp_id,
                device_client_id(cp_id, credentials, client_id_template),
                endpoint,
                credentials.get(cp_id) or credentials.get(ANY_DEVICE),
                ca_file,
                self,
                protocol,
            )
            for cp_id in checkpoint_ids
        }
        self._misc_at = 0.0
        self.should_be_online: set[str] = set()  # reconnect these if the broker drops them

    def pump(self, timeout: float = 0.0) -> None:
        """Read what arrived, write what is waiting, keep connections alive."""
        if self.selector.get_map():
            for key, _ in self.selector.select(timeout):
                key.data.client.loop_read()
        elif timeout > 0:
            time.sleep(timeout)
        for link in self.links.values():
            if link.client.want_write():
                link.client.loop_write()
        now = time.monotonic()
        for link in self.links.values():
            if link.retries:
                link.republish_due(now)
        if now - self._misc_at > 1.0:
            self._misc_at = now
            for link in self.links.values():
                link.client.loop_misc()
            self._reconnect_lost()

    def _reconnect_lost(self) -> None:
        """A device the plan has online but whose connection died (a real broker outage):
        try again; paho resends its unacknowledged messages after the CONNACK."""
        for cp_id in self.should_be_online:
            link = self.links[cp_id]
            if link.client.socket() is None:
                try:
                    link.client.reconnect()
                except OSError as exc:
                    log.warning("reconnect failed: %s", exc, extra={"checkpoint_id": cp_id})

    def await_connected(
        self, checkpoint_ids: Iterable[str], timeout: float = CONNECT_TIMEOUT_S
    ) -> None:
        waiting = list(checkpoint_ids)
        deadline = time.monotonic() + timeout
        while waiting:
            for cp_id in waiting:
                if self.links[cp_id].refused:
                    raise NetworkError(
                        f"{cp_id}: the broker refused the connection: {self.links[cp_id].refused}"
                    )
            waiting = [cp_id for cp_id in waiting if not self.links[cp_id].connected]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise NetworkError(
                    f"no CONNACK within {timeout:.0f} s for {', '.join(waiting[:5])}"
                )
            self.pump(0.01)

    def await_acks(self, checkpoint_ids: Iterable[str] | None = None, timeout: float = 30.0) -> int:
        """Wait until the broker acknowledged what was published; returns what is still
        unacknowledged when the time is up, plus what was given up as undelivered
        (answered 0x10 "no matching subscribers" every time)."""
        links = (
            [self.links[c] for c in checkpoint_ids] if checkpoint_ids else list(self.links.values())
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(link.pending or link.retries for link in links):
                break
            self.pump(0.01)
        return sum(len(link.pending) + len(link.retries) + link.undelivered for link in links)

    @property
    def unacknowledged(self) -> int:
        return sum(len(link.pending) for link in self.links.values())

    def close(self) -> None:
        for link in self.links.values():
            if link.client.socket() is not None:
                link.client.disconnect()
                link.client.loop_write()
        self.selector.close()


def clear_retained_status(
    endpoint: MqttEndpoint, prefix: str, checkpoint_ids: Iterable[str], client_id: str = ""
) -> None:
    """Remove the retained `status` messages a run left (tests and demos clean up)."""
    client = paho_client(client_id, "5")
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    client.connect(endpoint.host, endpoint.port)
    client.loop_start()
    try:
        infos = [
            client.publish(
                f"{prefix}/cp/{cp_id}/status",
                b"",
                qos=1,
                retain=True,
                properties=Properties(mqtt.PacketTypes.PUBLISH),
            )
            for cp_id in checkpoint_ids
        ]
        for info in infos:
            info.wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()
