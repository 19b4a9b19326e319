"""The naive pipeline ingest is compared with (bench/bench_loads.py): what a user might
write in an afternoon. A paho subscriber (MQTT v5, persistent session, QoS 1) that
checks each payload is a JSON object, and batch-inserts the raw
rows; no classification, no screening, no roll-ups, no dead letters.

    python bench/naive_pipeline.py DATABASE_URL MQTT_URL TOPIC_PREFIX CLIENT_ID
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import create_engine, text

BATCH = 2000
CREATE = (
    "CREATE TABLE IF NOT EXISTS raw_message (id {pk}, topic VARCHAR(256) NOT NULL,"
    " msg_id VARCHAR(64) NOT NULL, ts VARCHAR(64) NOT NULL, payload TEXT NOT NULL)"
)


def main() -> None:
    url, broker, prefix, client_id = sys.argv[1:5]
    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        pk = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY"
        conn.execute(text(CREATE.format(pk=pk)))
    pending: list[dict[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def on_message(client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        row = {
            "topic": message.topic,
            "msg_id": str(body.get("msg_id", "")),
            "ts": str(body.get("ts", "")),
            "payload": message.payload.decode("utf-8", "replace"),
        }
        with lock:
            pending.append(row)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(
        f"{prefix}/cp/#", options=SubscribeOptions(qos=1)
    )
    client.on_message = on_message
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 4000
    where = urlsplit(broker)
    client.connect(where.hostname or "127.0.0.1", where.port or 1883, clean_start=False,
                   properties=properties)  # fmt: skip
    client.loop_start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    insert = text(
        "INSERT INTO raw_message (topic, msg_id, ts, payload)"
        " VALUES (:topic, :msg_id, :ts, :payload)"
    )
    while not stop.is_set():
        with lock:
            batch, pending[:] = pending[:BATCH], pending[BATCH:]
        if not batch:
            time.sleep(0.02)
            continue
        with engine.begin() as conn:
            conn.execute(insert, batch)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
