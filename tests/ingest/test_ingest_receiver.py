"""Ingest's trimmed paho receive path (services/ingest/receiver.py): PUBLISH decoding,
the buffered socket, PUBACKs of a batch in one write, the hand-off's backpressure; and
through the real broker, messages with MQTT v5 properties and at QoS 0."""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine

from services.ingest.receiver import (
    BufferedSocket,
    Handoff,
    IngestClient,
    decode_qos1_publish,
    pubacks,
)
from services.ingest.service import IngestService
from tests.support import wait_until
from tests.support.ingest import stamp, stored, topic


def publish_body(topic_name: str, mid: int, payload: bytes, properties: bytes | None) -> bytes:
    """A PUBLISH packet's body (after the fixed header); properties None: MQTT 3.1.1."""
    encoded = topic_name.encode()
    body = struct.pack("!H", len(encoded)) + encoded + struct.pack("!H", mid)
    if properties is not None:
        body += bytes([len(properties)]) + properties
    return body + payload


def test_a_publish_is_decoded_in_both_protocol_versions() -> None:
    expiry = bytes([2]) + struct.pack("!I", 60)  # Message Expiry Interval
    user = bytes([38]) + struct.pack("!H", 1) + b"k" + struct.pack("!H", 1) + b"v"
    v5 = publish_body("cpm/v1/cp/cp-001/entry", 513, b'{"a": 1}', expiry + user)
    assert decode_qos1_publish(v5, v5=True) == ("cpm/v1/cp/cp-001/entry", b'{"a": 1}', 513)
    v3 = publish_body("cpm/v1/cp/cp-001/entry", 7, b"", None)
    assert decode_qos1_publish(v3, v5=False) == ("cpm/v1/cp/cp-001/entry", b"", 7)


@pytest.mark.parametrize(
    "packet",
    [
        b"\x00",  # no topic length
        b"\x00\x10abc",  # topic longer than the packet
        publish_body("t", 1, b"", b"")[:-1] + b"\xff\xff\xff\xff\x7f",  # 5-byte length
        publish_body("t", 1, b"", None) + b"\x05\x01",  # properties past the end
        struct.pack("!H", 2) + b"\xff\xfe" + b"\x00\x01\x00",  # topic not UTF-8
    ],
)
def test_a_malformed_publish_is_refused_not_misread(packet: bytes) -> None:
    with pytest.raises((ValueError, IndexError)):
        decode_qos1_publish(packet, v5=True)


def test_pubacks_of_a_batch_are_one_write() -> None:
    assert pubacks([1, 0x1234]) == b"\x40\x02\x00\x01\x40\x02\x12\x34"
    client = IngestClient(CallbackAPIVersion.VERSION2, manual_ack=True)
    queued: list[bytes] = []
    client._packet_queue = lambda command, packet, mid, qos, info=None: queued.append(packet)  # type: ignore[method-assign]
    client.ack_many(range(1, 501))
    client.ack_many([])
    assert len(queued) == 1 and len(queued[0]) == 4 * 500


def test_the_buffered_socket_hands_out_what_one_read_brought() -> None:
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        wrapped = BufferedSocket(ours)
        theirs.sendall(b"\x30\x05hello\x30\x02hi")
        wait_until(lambda: wrapped.pending() > 0 or _readable(ours))
        assert wrapped.recv(1) == b"\x30"
        assert wrapped.pending() == 10  # the rest of the read waits in the buffer
        assert [wrapped.recv(1), wrapped.recv(5), wrapped.recv(1), wrapped.recv(1)] == [
            b"\x05",
            b"hello",
            b"\x30",
            b"\x02",
        ]
        assert wrapped.recv(10) == b"hi"  # no more than the buffer holds
        assert wrapped.pending() == 0
        with pytest.raises(BlockingIOError):
            wrapped.recv(1)
        assert wrapped.fileno() == ours.fileno()
        theirs.close()
        wait_until(lambda: _readable(ours))
        assert wrapped.recv(1) == b""  # the peer closed: paho sees the connection end
    finally:
        ours.close()


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_the_handoff_waits_when_full_and_gives_up_when_stopping() -> None:
    handoff = Handoff(maxsize=3)
    stopping = threading.Event()
    assert all(handoff.put(n, stopping) for n in range(3))
    results: list[bool] = []
    blocked = threading.Thread(target=lambda: results.append(handoff.put(3, stopping)))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive() and len(handoff) == 3  # full: the producer waits
    assert handoff.take(2, linger_s=0, timeout_s=0) == [0, 1]
    blocked.join(5)
    assert results == [True] and handoff.take(10, linger_s=0, timeout_s=0) == [2, 3]
    assert handoff.take(10, linger_s=0, timeout_s=0.01) == []
    for n in range(3):
        handoff.put(n, stopping)
    stopping.set()
    assert handoff.put(99, stopping) is False  # full and stopping: not queued
    assert len(handoff) == 3


def test_v5_properties_and_qos_0_still_reach_the_database(
    ingest: IngestService, seeded_engine: Engine, mqtt_url: str
) -> None:
    """The fast path skips a PUBLISH's properties by their length; QoS 0 takes paho's
    own path (no PUBACK to send)."""
    where = urlsplit(mqtt_url)
    device = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    device.connect(where.hostname or "127.0.0.1", where.port or 1883)
    device.loop_start()
    try:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.MessageExpiryInterval = 600
        properties.UserProperty = [("firmware", "2.1"), ("zone", "north")]
        properties.ContentType = "application/json"
        duty: dict[str, Any] = {"ts": stamp(), "staff_id": "st-001-1", "action": "on"}
        sent = [
            device.publish(
                topic(ingest, "cp-001", "duty"),
                json.dumps({**duty, "msg_id": f"p{n}"}),
                qos=1,
                properties=properties,
            )
            for n in range(50)
        ]
        sent.append(
            device.publish(
                topic(ingest, "cp-001", "duty"), json.dumps({**duty, "msg_id": "q0"}), qos=0
            )
        )
        for info in sent:
            info.wait_for_publish(10)
        wait_until(lambda: stored(seeded_engine, "duty_event") == 51)
        assert ingest.wait_idle()
        assert ingest.stats.acked == 50  # QoS 0 has nothing to acknowledge
        assert stored(seeded_engine, "dead_letter") == 0
    finally:
        device.disconnect()
        device.loop_stop()
