"""paho's receive path, trimmed for what ingest does all day: QoS-1 PUBLISH packets in,
PUBACKs out after commit.

Measured on the shared 2-core box (bench/bench_receive.py), paho spent about 100 µs of
CPU a message here, most of it not on the message: three `recv` system calls per packet
(command byte, length byte, body), one `select` per packet, an MQTT v5 `Properties`
object built and cleared per PUBLISH (ingest reads no publish property), an
`MQTTMessage`, the topic matched against callback filters, a debug log line; and per
PUBACK a wake-up write on paho's socket pair plus a `send` of 4 bytes. `IngestClient`:

- reads the socket through `BufferedSocket` (one `recv` of up to 64 KiB feeds many
  packets; its `pending()` is how paho already drains an SSL socket's buffer without
  waiting in `select`), and parses every complete packet of a read in one go;
- decodes a QoS-1 PUBLISH itself (topic, packet id, v5 properties skipped by their
  length, payload) and hands `(topic, payload, mid)` to `on_delivery`; anything else
  (QoS 0/2, a topic that is not UTF-8, a malformed packet) takes paho's own path;
- sends the PUBACKs of a committed batch as one write (`ack_many`).

`Handoff` carries the messages to the commit thread, waking it per batch, not per
message.

Everything else (connect, keepalive, reconnect, subscribe, TLS) is paho's. The overrides
are paho 2.x internals (`_create_socket`, `_handle_publish`, `_packet_queue`), pinned by
requirements/dev-lock.txt and covered by tests/ingest/test_ingest_receiver.py.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

READ_SIZE = 65536
MAX_PACKETS_PER_READ = 4096  # then paho gets a turn to write (PUBACKs, pings)
PUBACK_HEADER = 0x40020000  # PUBACK, remaining length 2; the low 16 bits: packet id

Delivery = Callable[[str, bytes, int], None]


class BufferedSocket:
    """A socket read in large pieces; `recv(n)` returns at most n bytes of them. Every
    other attribute is the socket's own (send, fileno for select, close...)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._data):
            data: bytes = self._sock.recv(max(size, READ_SIZE))  # BlockingIOError too
            if len(data) <= size:
                self._data, self._pos = b"", 0
                return data  # b"" when the peer closed: paho sees the connection end
            self._data, self._pos = data, 0
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out

    def pending(self) -> int:
        """Bytes read but not yet returned (plus the SSL layer's own, when wrapped)."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._data) - self._pos + inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def decode_qos1_publish(packet: bytes | bytearray, v5: bool) -> tuple[str, bytes, int]:
    """(topic, payload, packet id) of a QoS-1 PUBLISH body (after the fixed header).
    Raises ValueError (or IndexError) when it is not well formed."""
    length = len(packet)
    topic_len = (packet[0] << 8) | packet[1]
    pos = 2 + topic_len
    if pos + 2 > length:
        raise ValueError("truncated PUBLISH")
    topic = packet[2:pos].decode("utf-8")  # UnicodeDecodeError is a ValueError
    mid = (packet[pos] << 8) | packet[pos + 1]
    pos += 2
    if v5:  # skip the properties: a variable byte integer length, then that many bytes
        size, shift = 0, 0
        while True:
            byte = packet[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                raise ValueError("properties length too long")
        pos += size
        if pos > length:
            raise ValueError("truncated PUBLISH properties")
    return topic, bytes(packet[pos:]), mid


def pubacks(mids: Iterable[int]) -> bytes:
    """PUBACK packets (success, no properties: the same bytes in MQTT 3.1.1 and 5)."""
    words = [PUBACK_HEADER | mid for mid in mids]
    return struct.pack(f"!{len(words)}I", *words)


class IngestClient(mqtt.Client):
    """A paho client with a cheaper path for QoS-1 PUBLISH packets (see the module)."""

    on_delivery: Delivery | None = None

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if self._transport == "websockets":  # its wrapper frames and buffers itself
            return sock
        return BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(MAX_PACKETS_PER_READ):
            sock = self._sock
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or sock is None:
                break
            if not isinstance(sock, BufferedSocket) or sock.pending() == 0:
                break
            rc = super().loop_read(max_packets)
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        command = self._in_packet["command"]
        deliver = self.on_delivery
        if deliver is None or (command & 0x06) >> 1 != 1 or not self._manual_ack:
            return super()._handle_publish()
        try:
            topic, payload, mid = decode_qos1_publish(
                self._in_packet["packet"], self._protocol == MQTTProtocolVersion.MQTTv5
            )
        except (ValueError, IndexError):
            return super()._handle_publish()  # paho's decoding, and its verdict
        deliver(topic, payload, mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Iterable[int]) -> None:
        """The PUBACKs of QoS-1 messages, queued as one write."""
        packet = pubacks(mids)
        if packet:
            self._packet_queue(mqtt.PUBACK, packet, 0, 0)


class Handoff:
    """Messages from paho's network thread to the commit thread, at most `maxsize`
    waiting: when it is full the network thread waits, so the broker holds the rest
    (backpressure, not an unbounded buffer). The commit thread is woken when a batch
    is full or its linger time is up, not on every message."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._not_empty = threading.Condition(self._lock)
        self._want = 0  # the consumer is waiting for this many (0: it is not waiting)
        self.arrived = 0  # items ever put (how fast they come: linger.py)

    def put(self, item: Any, stopping: threading.Event) -> bool:
        """False (and not queued) when `stopping` is set while waiting for room."""
        with self._lock:
            while len(self._items) >= self.maxsize:
                if stopping.is_set():
                    return False
                self._not_full.wait(0.5)
            self._items.append(item)
            self.arrived += 1
            if self._want and len(self._items) >= self._want:
                self._not_empty.notify()
        return True

    def take(self, size: int, linger_s: float, timeout_s: float) -> list[Any]:
        """Up to `size` items: waits up to `timeout_s` for the first, then up to
        `linger_s` for the batch to fill."""
        items = self._items
        with self._lock:
            if not items:
                self._wait(1, timeout_s)
                if not items:
                    return []
            deadline = time.monotonic() + linger_s
            while len(items) < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wait(size, remaining)
            batch = [items.popleft() for _ in range(min(size, len(items)))]
            self._not_full.notify_all()
        return batch

    def _wait(self, want: int, timeout_s: float) -> None:
        self._want = want
        try:
            self._not_empty.wait(timeout_s)
        finally:
            self._want = 0

    def __len__(self) -> int:
        return len(self._items)
