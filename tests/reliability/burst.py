"""A publisher process for scenario 5: QoS-1 readings and entries as fast as one paho
client can send them, for a given time.

    python -m tests.reliability.burst MQTT_URL PREFIX SECONDS

prints one JSON line: {"sent": n, "acked": n, "seconds": s}. Message n is
`burst_message(prefix, n)`, so the test can rebuild what was sent.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.reliability import TABLE_OF_KIND, Sent

BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
CHECKPOINTS = [f"cp-{n:03d}" for n in range(1, 103)]


def burst_message(prefix: str, n: int, base: datetime = BASE) -> Sent:
    cp = CHECKPOINTS[n % len(CHECKPOINTS)]
    ts = (base + timedelta(milliseconds=n)).isoformat()
    if n % 4 == 0:  # a vehicle passage: a registry look-up, no ID number needed
        msg_id, kind = f"be{n}", "entry"
        body = (
            f'{{"msg_id":"{msg_id}","ts":"{ts}","direction":"in","kind":"vehicle",'
            f'"plate":"粤B{n % 99999:05d}"}}'
        )
    else:
        msg_id, kind = f"br{n}", "reading"
        body = f'{{"msg_id":"{msg_id}","ts":"{ts}","temp_c":36.{n % 10},"direction":"out"}}'
    return Sent(f"{prefix}/cp/{cp}/{kind}", body.encode(), TABLE_OF_KIND[kind], cp, msg_id)


def main(url: str, prefix: str, seconds: float, base: str) -> None:
    parts = urlsplit(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"rel-burst-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(2000)  # publish() waits when the broker falls behind
    acked = 0
    lock = threading.Lock()

    def on_publish(*_: object) -> None:
        nonlocal acked
        with lock:
            acked += 1

    client.on_publish = on_publish
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    started = time.monotonic()
    stop = started + seconds
    start_ts = datetime.fromisoformat(base)
    sent = 0
    while time.monotonic() < stop:
        message = burst_message(prefix, sent, start_ts)
        info = client.publish(message.topic, message.payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)
            continue
        sent += 1
    deadline = time.monotonic() + 120
    while acked < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"sent": sent, "acked": acked, "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4])
