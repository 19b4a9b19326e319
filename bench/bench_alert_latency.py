"""Alert latency: a device publishes a fever reading -> the alert arrives at an MQTT
subscriber and at a local webhook receiver, under ~1,000 msg/s of background traffic.

Runs ingest and the alert service in this process on a fresh database (SQLite by
default; `--database-url postgresql+psycopg://...` for PostgreSQL) and the broker on
127.0.0.1:1883. Baseline in the same run and under the same load: a plain MQTT QoS-1
publish -> receive round trip. Writes its section of docs/benchmarks.md.

    /tmp/venv/bin/python bench/bench_alert_latency.py [--fevers 100] [--rate 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import write_section
from services.alerts import lifecycle, signing
from services.alerts.service import AlertService, AlertTuning
from services.core.db import make_engine
from services.core.demo import generate_community
from services.core.migrate import upgrade
from services.core.models.alerts import WebhookRouteCreate
from services.core.protocol import device_topic
from services.core.seed import load_demo
from services.core.settings import Settings
from services.core.utils import freeze_startup_objects
from services.ingest.service import IngestService

SECRET = "bench-secret-0123456789abcdef"
SECTION = "alert-latency"


def client(name: str) -> mqtt.Client:
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{name}-{uuid.uuid4().hex[:6]}"
    )
    c.connect("127.0.0.1", 1883)
    c.loop_start()
    return c


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Background(threading.Thread):
    """Heartbeats and normal readings from checkpoints cp-051..cp-102 at `rate` msg/s."""

    def __init__(self, prefix: str, rate: int) -> None:
        super().__init__(daemon=True)
        self.prefix, self.rate, self.stop, self.sent = prefix, rate, threading.Event(), 0
        self.mqtt = client("bg")

    def run(self) -> None:
        tick, n = 0.01, 0
        per_tick = max(1, int(self.rate * tick))
        next_at = time.perf_counter()
        while not self.stop.is_set():
            for _ in range(per_tick):
                cp = f"cp-{51 + n % 52:03d}"
                if n % 2:
                    body = {"ts": now_iso(), "uptime_s": n}
                    self.mqtt.publish(
                        device_topic(self.prefix, cp, "heartbeat"), json.dumps(body), qos=1
                    )
                else:
                    body = {"msg_id": f"bg-{n}", "ts": now_iso(), "temp_c": 36.4, "direction": "in"}
                    self.mqtt.publish(
                        device_topic(self.prefix, cp, "reading"), json.dumps(body), qos=1
                    )
                n += 1
            self.sent = n
            next_at += tick
            time.sleep(max(0.0, next_at - time.perf_counter()))
        self.mqtt.loop_stop()
        self.mqtt.disconnect()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="cpm-bench-alerts-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    upgrade(url)
    engine = make_engine(url)
    load_demo(engine, generate_community(seed=7, people=400, vehicles=40, quarantined=6), SECRET)
    prefix = f"bench/{uuid.uuid4().hex[:8]}/cpm/v1"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        topic_prefix=prefix,
        id_hash_secret=SECRET,
        ingest_client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}",
    )
    secret = signing.new_secret()
    hook_times: dict[str, float] = {}

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            at = time.perf_counter()
            data = json.loads(body)["data"]
            hook_times.setdefault(data["details"].get("entry_msg_id", ""), at)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with Session(engine) as session:
        lifecycle.create_route(
            session,
            WebhookRouteCreate(
                name="bench", url=f"http://127.0.0.1:{server.server_address[1]}/", secret=secret
            ),
        )
        session.commit()

    mqtt_times: dict[str, float] = {}
    base_times: dict[str, float] = {}

    def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        at = time.perf_counter()
        if m.topic.endswith("/baseline"):
            base_times.setdefault(m.payload.decode(), at)
        else:
            data = json.loads(m.payload)["data"]
            mqtt_times.setdefault(data["details"].get("entry_msg_id", ""), at)

    listener = client("listen")
    listener.on_message = on_message
    listener.subscribe([(f"{prefix}/alerts/+", 1), (f"{prefix}/bench/baseline", 1)])

    ingest = IngestService(settings, engine)
    alerts = AlertService(settings, engine, tuning=AlertTuning(poll_interval_s=1.0))
    ingest.start()
    alerts.start()
    freeze_startup_objects()  # as `cpmon ingest` and `cpmon alerts` do
    background = Background(prefix, args.rate)
    background.start()
    device = client("device")
    time.sleep(2.0)  # let the background load settle
    sent: dict[str, float] = {}
    base_sent: dict[str, float] = {}
    started = time.perf_counter()
    for i in range(args.fevers):
        key = f"fever-{i}"
        cp = f"cp-{1 + i % 50:03d}"
        body = {
            "msg_id": key,
            "ts": now_iso(),
            "temp_c": 38.5,
            "direction": "in",
            "entry_msg_id": key,
        }
        sent[key] = time.perf_counter()
        device.publish(device_topic(prefix, cp, "reading"), json.dumps(body), qos=1)
        base_sent[key] = time.perf_counter()
        device.publish(f"{prefix}/bench/baseline", key, qos=1)
        time.sleep(args.interval)
    deadline = time.perf_counter() + 15
    while time.perf_counter() < deadline and (
        len(mqtt_times) < args.fevers or len(hook_times) < args.fevers
    ):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    background.stop.set()
    background.join()
    bg_rate = background.sent / (time.perf_counter() - started + 2.0)
    for c in (device, listener):
        c.loop_stop()
        c.disconnect()
    alerts.stop()
    ingest.stop()
    server.shutdown()

    def ms(times: dict[str, float], origin: dict[str, float]) -> list[float]:
        return [(times[k] - origin[k]) * 1000 for k in origin if k in times]

    result = {
        "database": "PostgreSQL" if url.startswith("postgresql") else "SQLite",
        "fevers": args.fevers,
        "background_rate": round(bg_rate),
        "elapsed_s": round(elapsed, 1),
        "mqtt": ms(mqtt_times, sent),
        "webhook": ms(hook_times, sent),
        "baseline": ms(base_times, base_sent),
    }
    return result


def summarize(result: dict[str, Any]) -> str:
    base_p50 = percentile(result["baseline"], 50)
    base_p99 = percentile(result["baseline"], 99)
    lines = [
        f"Device publishes a fever reading -> alert received; {result['fevers']} fevers on "
        f"{result['database']}, background load ~{result['background_rate']} msg/s "
        "(heartbeats and normal readings), ingest + alert service in one process, "
        f"Mosquitto on 127.0.0.1, run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        "Target: p99 ≤ 250 ms.",
        "",
        "| path | received | p50 ms | p99 ms | p99 / baseline p99 |",
        "|---|---|---|---|---|",
        f"| baseline: MQTT QoS 1 publish -> subscriber | {len(result['baseline'])} | "
        f"{base_p50:.1f} | {base_p99:.1f} | 1.0 |",
    ]
    for name in ("mqtt", "webhook"):
        values = result[name]
        if not values:
            lines.append(f"| fever -> alert via {name} | 0 | - | - | - |")
            continue
        p50, p99 = percentile(values, 50), percentile(values, 99)
        lines.append(
            f"| fever -> alert via {name} | {len(values)}/{result['fevers']} | {p50:.1f} | "
            f"{p99:.1f} | {p99 / base_p99:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--fevers", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between fevers")
    parser.add_argument("--rate", type=int, default=1000, help="background msg/s")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    text = summarize(run(args))
    print(text)
    if not args.no_write:
        engine = "postgresql" if args.database_url else "sqlite"
        title = f"Alert latency, {engine} (bench/bench_alert_latency.py)"
        write_section(f"{SECTION}-{engine}", title, text)


if __name__ == "__main__":
    main()
