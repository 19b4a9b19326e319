"""A bare MQTT 3.1.1 publisher for load mode: pre-encoded PUBLISH packets, sent in batches.

Why not paho here: paho spends about 40 µs of CPU per QoS-1 message (one `send()` per
packet, a Properties object per PUBACK), so on a small machine the load generator would
take the core the ingest under test needs. This writer does only CONNECT, PUBLISH (QoS
0/1), PUBACK counting, PINGREQ and DISCONNECT, and costs a few µs per message. The
devices of a simulation still use paho: they need wills, MQTT v5 and reconnects.
"""

from __future__ import annotations

import socket
import ssl
import time

from services.core.settings import MqttEndpoint

SEND_CHUNK = 256 * 1024
KEEPALIVE_S = 60


class MqttRefused(RuntimeError):
    pass


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return len(raw).to_bytes(2, "big") + raw


def _packet_end(box: bytearray, i: int) -> int | None:
    """Where the packet starting at `i` ends, or None if it has not fully arrived."""
    length, shift, j = 0, 0, i + 1
    while j < len(box):
        byte = box[j]
        length |= (byte & 0x7F) << shift
        j += 1
        if not byte & 0x80:
            end = j + length
            return end if end <= len(box) else None
        shift += 7
    return None


class RawPublisher:
    def __init__(self, endpoint: MqttEndpoint, client_id: str, ca_file: str | None = None) -> None:
        sock: socket.socket = socket.create_connection((endpoint.host, endpoint.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if endpoint.tls:
            context = ssl.create_default_context(cafile=ca_file)
            sock = context.wrap_socket(sock, server_hostname=endpoint.host)
        flags, body = 0x02, _text(client_id)  # clean session
        if endpoint.username:
            flags |= 0x80
            body += _text(endpoint.username)
            if endpoint.password is not None:
                flags |= 0x40
                body += _text(endpoint.password)
        variable = _text("MQTT") + bytes([4, flags]) + KEEPALIVE_S.to_bytes(2, "big")
        sock.sendall(b"\x10" + _varint(len(variable) + len(body)) + variable + body)
        connack = b""
        while len(connack) < 4:
            chunk = sock.recv(4 - len(connack))
            if not chunk:
                raise MqttRefused("the broker closed the connection before CONNACK")
            connack += chunk
        if connack[0] != 0x20 or connack[3] != 0:
            raise MqttRefused(f"the broker refused the connection (CONNACK code {connack[3]})")
        sock.setblocking(False)
        self.sock = sock
        self.out = bytearray()
        self.inbox = bytearray()
        self.next_id = 1
        self.pending = 0
        self.acked = 0
        self.sent_at = time.monotonic()
        self._topics: dict[str, bytes] = {}

    def fileno(self) -> int:
        return self.sock.fileno()

    def queue(self, topic: str, payload: bytes, qos: int = 1) -> None:
        head = self._topics.get(topic)
        if head is None:
            head = self._topics[topic] = _text(topic)
        if qos:
            packet_id = self.next_id.to_bytes(2, "big")
            self.next_id = self.next_id % 65535 + 1
            self.out += b"\x32" + _varint(len(head) + 2 + len(payload)) + head + packet_id
            self.pending += 1
        else:
            self.out += b"\x30" + _varint(len(head) + len(payload)) + head
        self.out += payload

    def flush(self) -> None:
        while self.out:
            try:
                sent = self.sock.send(self.out[:SEND_CHUNK])
            except (BlockingIOError, ssl.SSLWantWriteError):
                return
            del self.out[:sent]
            self.sent_at = time.monotonic()

    def read(self) -> None:
        """Take what the broker sent; count PUBACKs."""
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                break
            if not data:
                raise ConnectionError("the broker closed the connection")
            self.inbox += data
        i, box = 0, self.inbox
        while (end := _packet_end(box, i)) is not None:
            if box[i] & 0xF0 == 0x40:  # PUBACK
                self.acked += 1
                self.pending -= 1
            i = end
        del box[:i]

    def keepalive(self) -> None:
        if time.monotonic() - self.sent_at > KEEPALIVE_S / 2 and not self.out:
            self.out += b"\xc0\x00"  # PINGREQ
            self.flush()

    def close(self) -> None:
        try:
            self.out += b"\xe0\x00"  # DISCONNECT
            self.sock.setblocking(True)
            self.sock.sendall(self.out)
        except OSError:
            pass
        finally:
            self.sock.close()
