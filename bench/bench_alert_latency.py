"""Alert latency: a device publishes a fever reading -> the alert arrives at an MQTT
subscriber and at a local webhook receiver, under ~1,000 msg/s of background traffic.

Runs `cpmon ingest` and `cpmon alerts` as separate processes, as `cpmon up` deploys
them, on a fresh database per engine (SQLite and PostgreSQL), with the broker on
127.0.0.1:1883; the background load comes from a process of its own. Baseline in the
same run and under the same load: a plain MQTT QoS-1 publish -> receive round trip.
Writes a section of docs/benchmarks.md per engine.

    python bench/bench_alert_latency.py [--engines sqlite,postgresql] [--fevers 200]
    python bench/bench_alert_latency.py --background stuck --rate 2000   # issue 19's loads

Backgrounds: `normal` (heartbeats and normal readings over 52 checkpoints), `dense`
(entries of people not in the registry and unlinked readings, 1 in 3, at 4 checkpoints,
stamped now; one reading in 20 implausible), `stuck` (the same at one checkpoint, every
message with one timestamp).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import create_engine, text
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import write_section  # noqa: E402
from services.alerts import lifecycle, signing  # noqa: E402
from services.core.db import make_engine  # noqa: E402
from services.core.demo import generate_community  # noqa: E402
from services.core.migrate import upgrade  # noqa: E402
from services.core.models.alerts import WebhookRouteCreate  # noqa: E402
from services.core.protocol import device_topic  # noqa: E402
from services.core.seed import load_demo  # noqa: E402

PG_ADMIN = os.environ.get("CPM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
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


BACKGROUNDS = {
    "normal": "heartbeats and normal readings",
    "dense": "issue 19's dense load: entries of strangers and unlinked readings at 4 "
    "checkpoints, now-stamped, 1 reading in 20 implausible",
    "stuck": "issue 19's stuck clock: entries of strangers and unlinked readings at one "
    "checkpoint, all with one timestamp, 1 reading in 20 implausible",
}


def background_message(shape: str, n: int, stuck_at: str) -> tuple[str, str, dict[str, Any]]:
    """(checkpoint, kind, body) of the n-th background message."""
    if shape == "normal":
        cp = f"cp-{51 + n % 52:03d}"
        if n % 2:
            return cp, "heartbeat", {"ts": now_iso(), "uptime_s": n}
        body = {"msg_id": f"bg-{n}", "ts": now_iso(), "temp_c": 36.4, "direction": "in"}
        return cp, "reading", body
    cp = "cp-051" if shape == "stuck" else f"cp-{51 + n % 4:03d}"
    ts = stuck_at if shape == "stuck" else now_iso()
    body: dict[str, Any] = {"msg_id": f"bg-{n}", "ts": ts, "direction": ("in", "out")[n % 2]}
    if n % 3 == 0:
        body["temp_c"] = 12.0 if n % 60 == 0 else 36.4  # now and then a sensor fault
        return cp, "reading", body
    body.update(kind="person", id_number=f"{10**17 + n}", qr_pass=f"QR{n:016x}")
    return cp, "entry", body


def background_load(prefix: str, rate: int, stop: Any, sent: Any, shape: str) -> None:
    """`shape` messages (see the module) at `rate` msg/s, in a process of its own so it
    competes with nothing but the system under test."""
    publisher = client("bg")
    tick, n = 0.01, 0
    per_tick = max(1, int(rate * tick))
    next_at = time.perf_counter()
    stuck_at = now_iso()
    while not stop.is_set():
        for _ in range(per_tick):
            cp, kind, body = background_message(shape, n, stuck_at)
            publisher.publish(device_topic(prefix, cp, kind), json.dumps(body), qos=1)
            n += 1
        sent.value = n
        next_at += tick
        time.sleep(max(0.0, next_at - time.perf_counter()))
    publisher.loop_stop()
    publisher.disconnect()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A migrated database with a small demo registry and a webhook route; dropped after."""
    name = f"bench_alerts_{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="cpm-bench-alerts-"))
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT") if kind == "postgresql" else None
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{tmp}/bench.db"
    try:
        upgrade(url)
        engine = make_engine(url)
        load_demo(
            engine, generate_community(seed=7, people=400, vehicles=40, quarantined=6), SECRET
        )
        engine.dispose()
        yield url
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def add_webhook_route(url: str, receiver: str) -> None:
    engine = make_engine(url)
    with Session(engine) as session:
        lifecycle.create_route(
            session, WebhookRouteCreate(name="bench", url=receiver, secret=signing.new_secret())
        )
        session.commit()
    engine.dispose()


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its descendants (ingest's writer is a child)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK") + sum(cpu_seconds(int(c)) for c in children)


@contextmanager
def services(url: str, prefix: str) -> Iterator[dict[str, int]]:
    """`cpmon ingest` and `cpmon alerts` as separate processes, as `cpmon up` runs them."""
    env = {
        **os.environ,
        "CPM_DATABASE_URL": url,
        "CPM_TOPIC_PREFIX": prefix,
        "CPM_ID_HASH_SECRET": SECRET,
        "CPM_MQTT_URL": "mqtt://127.0.0.1:1883",
        "CPM_INGEST_CLIENT_ID": f"bench-ingest-{uuid.uuid4().hex[:6]}",
        "CPM_LOG_LEVEL": "WARNING",
        "CPM_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",  # the receiver is local
    }
    procs = [
        subprocess.Popen([sys.executable, "-m", "services.cli", *command], env=env, cwd=ROOT)
        for command in (["ingest"], ["alerts"])
    ]
    try:
        yield {"ingest": procs[0].pid, "alerts": procs[1].pid}
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


class Receivers:
    """Arrival times: alerts on MQTT, alerts at the webhook, and the baseline topic."""

    def __init__(self, prefix: str) -> None:
        self.mqtt: dict[str, float] = {}
        self.webhook: dict[str, float] = {}
        self.baseline: dict[str, float] = {}
        webhook_times = self.webhook

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                at = time.perf_counter()
                data = json.loads(body)["data"]
                webhook_times.setdefault(data["details"].get("entry_msg_id", ""), at)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.listener = client("listen")
        self.listener.on_message = self._on_message
        self.listener.subscribe([(f"{prefix}/alerts/+", 1), (f"{prefix}/bench/baseline", 1)])

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        at = time.perf_counter()
        if m.topic.endswith("/baseline"):
            self.baseline.setdefault(m.payload.decode(), at)
        else:
            data = json.loads(m.payload)["data"]
            self.mqtt.setdefault(data["details"].get("entry_msg_id", ""), at)

    def close(self) -> None:
        self.listener.loop_stop()
        self.listener.disconnect()
        self.server.shutdown()


def fever(device: mqtt.Client, prefix: str, key: str, checkpoint: str) -> None:
    body = {"msg_id": key, "ts": now_iso(), "temp_c": 38.5, "direction": "in", "entry_msg_id": key}
    device.publish(device_topic(prefix, checkpoint, "reading"), json.dumps(body), qos=1)


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench/{uuid.uuid4().hex[:8]}/cpm/v1"
    with fresh_database(kind) as url:
        receivers = Receivers(prefix)
        add_webhook_route(url, receivers.url)
        device = client("device")
        with services(url, prefix) as pids:
            # ready when a first fever makes it all the way through both channels
            deadline = time.perf_counter() + 60
            warmups = 0
            while not (receivers.mqtt and receivers.webhook):
                if time.perf_counter() > deadline:
                    raise SystemExit("ingest/alerts did not start within 60 s")
                fever(device, prefix, f"warmup-{warmups}", "cp-001")
                warmups += 1
                time.sleep(1.0)
            receivers.mqtt.clear()
            receivers.webhook.clear()
            stop = multiprocessing.Event()
            sent_count = multiprocessing.Value("q", 0)
            background = multiprocessing.Process(
                target=background_load,
                args=(prefix, args.rate, stop, sent_count, args.background),
                daemon=True,
            )
            background.start()
            time.sleep(2.0)  # let the background load settle
            sent: dict[str, float] = {}
            sent_wall: dict[str, float] = {}
            base_sent: dict[str, float] = {}
            started = time.perf_counter()
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            for i in range(args.fevers):
                key = f"fever-{i}"
                sent[key] = time.perf_counter()
                sent_wall[key] = time.time()
                fever(device, prefix, key, f"cp-{1 + i % 50:03d}")
                base_sent[key] = time.perf_counter()
                device.publish(f"{prefix}/bench/baseline", key, qos=1)
                time.sleep(args.interval)
            deadline = time.perf_counter() + 15
            while time.perf_counter() < deadline and (
                len(receivers.mqtt) < args.fevers or len(receivers.webhook) < args.fevers
            ):
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            cpu = {
                name: (cpu_seconds(pid) - cpu_before[name]) / elapsed for name, pid in pids.items()
            }
            stop.set()
            background.join()
        device.loop_stop()
        device.disconnect()
        receivers.close()
        stages = stage_lags(url, sent_wall)

    def ms(times: dict[str, float], origin: dict[str, float]) -> list[float]:
        return [(times[k] - origin[k]) * 1000 for k in origin if k in times]

    return {
        "database": "PostgreSQL" if kind == "postgresql" else "SQLite",
        "fevers": args.fevers,
        "background_rate": round(sent_count.value / (elapsed + 2.0)),
        "background": args.background,
        "elapsed_s": round(elapsed, 1),
        "mqtt": ms(receivers.mqtt, sent),
        "webhook": ms(receivers.webhook, sent),
        "baseline": ms(receivers.baseline, base_sent),
        "stages": stages,
        "cpu": cpu,
    }


STAGES = {
    "received": "publish -> ingest received it (`reading.received_at`)",
    "opened": "received -> start of the alert pass that raised it (ingest's commit, "
    "the alert worker's backlog; `alert.opened_at`)",
    "delivered": "that pass's start -> MQTT alert event sent (the pass, then delivery; "
    "`outbox.delivered_at`)",
}


def stage_lags(url: str, sent_wall: dict[str, float]) -> dict[str, list[float]]:
    """Where each fever's time went, in ms, from the timestamps the services stored
    (one machine, one clock): see STAGES."""
    engine = make_engine(url)
    with engine.connect() as conn:
        received = {
            k: as_utc(t).timestamp()
            for k, t in conn.execute(
                text("SELECT msg_id, received_at FROM reading WHERE msg_id LIKE 'fever-%'")
            )
        }
        alerts = conn.execute(
            text("SELECT id, opened_at, details FROM alert WHERE type = 'fever'")
        ).all()
        delivered = dict(
            conn.execute(
                text(
                    "SELECT alert_id, delivered_at FROM outbox WHERE channel = 'mqtt' "
                    "AND event = 'opened' AND delivered_at IS NOT NULL"
                )
            ).all()
        )
    engine.dispose()
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for alert_id, opened_at, details in alerts:
        key = (json.loads(details) if isinstance(details, str) else details).get("entry_msg_id")
        if key not in sent_wall or key not in received:
            continue
        opened = as_utc(opened_at).timestamp()
        stages["received"].append((received[key] - sent_wall[key]) * 1000)
        stages["opened"].append((opened - received[key]) * 1000)
        if alert_id in delivered:
            stages["delivered"].append((as_utc(delivered[alert_id]).timestamp() - opened) * 1000)
    return stages


def as_utc(value: Any) -> datetime:
    """A stored timestamp as an aware datetime (SQLite hands back text or naive UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def summarize(result: dict[str, Any]) -> str:
    base_p50 = percentile(result["baseline"], 50)
    base_p99 = percentile(result["baseline"], 99)
    lines = [
        f"Device publishes a fever reading -> alert received; {result['fevers']} fevers on "
        f"{result['database']}, background load ~{result['background_rate']} msg/s "
        f"({BACKGROUNDS[result['background']]}, from a process of its own), `cpmon ingest` and "
        "`cpmon alerts` as separate processes (as deployed), "
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
    cpu = result.get("cpu", {})
    if cpu:
        lines += [
            "",
            "CPU while the fevers ran, in cores: "
            + ", ".join(f"`cpmon {name}` {share:.2f}" for name, share in cpu.items())
            + " (with its child processes; the machine has "
            f"{os.cpu_count()} cores).",
        ]
    stages = result.get("stages", {})
    if any(stages.values()):
        lines += ["", "Where a fever's time went (from the stored timestamps):", ""]
        lines += ["| stage | fevers | p50 ms | p99 ms |", "|---|---|---|---|"]
        for name, label in STAGES.items():
            values = stages[name]
            if values:
                lines.append(
                    f"| {label} | {len(values)} | {percentile(values, 50):.1f} | "
                    f"{percentile(values, 99):.1f} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--fevers", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between fevers")
    parser.add_argument("--rate", type=int, default=1000, help="background msg/s")
    parser.add_argument("--background", choices=sorted(BACKGROUNDS), default="normal")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    for kind in args.engines.split(","):
        text = summarize(run(kind, args))
        print(text, flush=True)
        if not args.no_write:
            name = kind if args.background == "normal" else f"{kind}-{args.background}"
            title = f"Alert latency, {name} (bench/bench_alert_latency.py)"
            write_section(f"{SECTION}-{name}", title, text)


if __name__ == "__main__":
    main()
