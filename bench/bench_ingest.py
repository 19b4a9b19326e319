"""Ingest benchmark: throughput against the broker's own ceiling, publish→commit latency,
and memory while draining a large backlog. Results go to docs/benchmarks.md.

    python bench/bench_ingest.py                       # 100,000 messages, both databases
    python bench/bench_ingest.py --backlog 1000000     # plus the 1-million backlog memory run
    python bench/bench_ingest.py --databases sqlite --messages 20000 --no-write   # quick look

Every figure is measured in the same run on the same machine, through one private
`mosquitto` (nothing else uses it), with the simulator's load mode as the devices:
- ceiling: a bare paho subscriber (MQTT v5, the same persistent shared subscription and
  Receive Maximum as ingest) that only counts QoS-1 messages, draining a backlog of N;
- ingest: the real IngestService draining the same backlog into a database seeded with
  the 69,000-person demo community: parse, registry look-ups, screening, roll-ups, commit;
- latency: devices publish at a steady rate; a row is committed when ingest announces its
  id on `{prefix}/internal/committed`; latency = announcement time − device timestamp.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest_process import SECRET, start_ingest  # noqa: E402
from bench.report import write_section  # noqa: E402
from devices.simulator.load import message_stream, run_load  # noqa: E402
from services.core.db import make_engine  # noqa: E402
from services.core.demo import DemoCommunity, generate_community  # noqa: E402
from services.core.migrate import upgrade  # noqa: E402
from services.core.protocol import committed_topic  # noqa: E402
from services.core.seed import load_demo  # noqa: E402
from services.core.settings import Settings  # noqa: E402
from services.ingest.batch import BatchProcessor  # noqa: E402
from services.ingest.parse import Inbound  # noqa: E402
from services.ingest.service import IngestService, subscription_topic  # noqa: E402
from tests.support import Publisher, private_broker, tree_rss_kb  # noqa: E402

PG_ADMIN = os.environ.get("CPM_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_database(kind: str, community: DemoCommunity) -> Iterator[str]:
    """A migrated database holding the demo registry; dropped afterwards."""
    name = f"cpm_bench_{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        path = Path("/tmp") / f"{name}.db"
        url = f"sqlite:///{path}"
    else:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        engine = make_engine(url)
        load_demo(engine, community, SECRET)
        engine.dispose()
        yield url
    finally:
        if kind == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def settings_for(url: str, broker: str, prefix: str, client_id: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        mqtt_url=broker,
        topic_prefix=prefix,
        id_hash_secret=SECRET,
        ingest_client_id=client_id,
    )


class CountingSubscriber:
    """The ceiling: what a Python MQTT client can take from this broker, doing nothing."""

    def __init__(self, settings: Settings, on_message=None) -> None:  # type: ignore[no-untyped-def]
        self.settings = settings
        self.count = 0
        self.ready = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.ingest_client_id, protocol=mqtt.MQTTv5
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            subscription_topic(settings), options=SubscribeOptions(qos=1)
        )
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = on_message or self._count

    def _count(self, client, userdata, message) -> None:  # type: ignore[no-untyped-def]
        self.count += 1

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        properties.ReceiveMaximum = self.settings.ingest_receive_maximum
        endpoint = self.settings.mqtt
        self.client.connect(endpoint.host, endpoint.port, clean_start=False, properties=properties)
        self.client.loop_start()
        self.ready.wait(10)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def drain_rate(start, stop, done, total: int) -> float:  # type: ignore[no-untyped-def]
    """Messages per second while a consumer drains a backlog of `total`."""
    began = time.perf_counter()
    start()
    while not done():
        time.sleep(0.01)
    seconds = time.perf_counter() - began
    stop()
    return total / seconds


def throughput(kind: str, community: DemoCommunity, messages: int) -> dict[str, float]:
    prefix = f"bench/{uuid.uuid4().hex[:6]}/cpm/v1"
    stream = message_stream(community, prefix, messages)
    with private_broker() as broker, fresh_database(kind, community) as url:
        ceiling = CountingSubscriber(settings_for(url, broker, prefix, "bench-ceiling"))
        ceiling.start()  # creates the persistent session, then goes away
        ceiling.stop()
        published = run_load(broker, prefix, stream=stream)
        ceiling_rate = drain_rate(
            ceiling.start, ceiling.stop, lambda: ceiling.count >= messages, messages
        )
        rates = {}
        for writer in ("process", "thread"):
            # a topic prefix of its own: the ceiling's session is still subscribed to the
            # first one, and would take messages too
            settings = settings_for(url, broker, f"{prefix}/{writer}", f"bench-{writer}")
            settings = settings.model_copy(update={"ingest_writer": writer})
            ingest = IngestService(settings)
            ingest.start()
            ingest.stop()
            run_load(
                broker,
                settings.topic_prefix,
                stream=message_stream(community, settings.topic_prefix, messages),
            )
            ingest = IngestService(settings)
            rates[writer] = drain_rate(
                ingest.start,
                ingest.stop,
                lambda service=ingest: service.stats.acked >= messages,
                messages,
            )
            assert ingest.stats.dead_letters == 0, ingest.stats
        processing_rate = processing_only(settings, community, messages)
    return {
        "publish": published.rate,
        "ceiling": ceiling_rate,
        "ingest": rates["process"],
        "ingest_thread": rates["thread"],
        "processing": processing_rate,
    }


def processing_only(settings: Settings, community: DemoCommunity, messages: int) -> float:
    """The same work without MQTT: batches of already-received messages straight into
    the batch processor (parse, look-ups, screening, roll-ups, commit)."""
    prefix = settings.topic_prefix + "/direct"
    settings = settings.model_copy(update={"topic_prefix": prefix})
    now = datetime.now(UTC)
    items = [Inbound(t, p, now) for t, p in message_stream(community, prefix, messages)]
    engine = make_engine(settings.database_url)
    processor = BatchProcessor(engine, settings)
    size = settings.ingest_batch_size
    began = time.perf_counter()
    for start in range(0, len(items), size):
        processor.process(items[start : start + size])
    seconds = time.perf_counter() - began
    engine.dispose()
    return messages / seconds


def latency(kind: str, community: DemoCommunity, rate: int, seconds: int) -> dict[str, float]:
    prefix = f"bench/{uuid.uuid4().hex[:6]}/cpm/v1"
    count = rate * seconds
    with private_broker() as broker, fresh_database(kind, community) as url:
        # baseline: publish -> a bare subscriber's on_message
        base_lat: list[float] = []

        def on_message(client, userdata, message) -> None:  # type: ignore[no-untyped-def]
            ts = json.loads(message.payload)["ts"]
            base_lat.append(time.time() - datetime.fromisoformat(ts).timestamp())

        bare = CountingSubscriber(settings_for(url, broker, prefix, "bench-bare"), on_message)
        bare.start()
        publish_paced(broker, message_stream(community, prefix, count), rate)
        time.sleep(1)
        bare.stop()

        settings = settings_for(url, broker, prefix + "/x", "bench-ingest-lat")
        announcements: list[tuple[float, dict[str, int]]] = []
        watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        watcher.on_message = lambda c, u, m: announcements.append(
            (time.time(), json.loads(m.payload))
        )
        watcher.connect(settings.mqtt.host, settings.mqtt.port)
        watcher.subscribe(committed_topic(settings.topic_prefix), qos=0)
        watcher.loop_start()
        ingest = IngestService(settings)
        ingest.start()
        publish_paced(broker, message_stream(community, settings.topic_prefix, count), rate)
        ingest.wait_idle(quiet_s=1.0, timeout=60)
        ingest.stop()
        watcher.loop_stop()
        engine = make_engine(url)
        ingest_lat: list[float] = []
        with engine.connect() as conn:
            for table in ("passage", "reading", "duty_event"):
                committed = [(at, ids[table]) for at, ids in announcements if table in ids]
                rows = conn.execute(text(f"SELECT id, device_ts FROM {table}")).all()
                for row in rows:
                    device_ts = row.device_ts
                    if isinstance(device_ts, str):
                        device_ts = datetime.fromisoformat(device_ts).replace(tzinfo=UTC)
                    at = next((at for at, newest in committed if newest >= row.id), None)
                    if at is not None:
                        ingest_lat.append(at - device_ts.timestamp())
        engine.dispose()
    return {
        "baseline_p50": percentile(base_lat, 50),
        "baseline_p99": percentile(base_lat, 99),
        "p50": percentile(ingest_lat, 50),
        "p99": percentile(ingest_lat, 99),
        "samples": len(ingest_lat),
    }


def publish_paced(broker: str, stream: list[tuple[str, bytes]], rate: int) -> None:
    """Publish at `rate`, each message stamped with the moment it is sent (so latency is
    measured from the real publish time, as a device stamps its events)."""
    device = Publisher(broker)
    began = time.perf_counter()
    try:
        for i, (topic, payload) in enumerate(stream):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            body = json.loads(payload)
            body["ts"] = datetime.now(UTC).isoformat()
            device.client.publish(topic, json.dumps(body), qos=1)
        time.sleep(0.5)
    finally:
        device.close()


def backlog_memory(community: DemoCommunity, messages: int) -> dict[str, float]:
    """Peak RSS of a `cpmon ingest` process draining a backlog of `messages` (SQLite)."""
    prefix = f"bench/{uuid.uuid4().hex[:6]}/cpm/v1"
    with private_broker() as broker, fresh_database("sqlite", community) as url:
        ingest = IngestService(settings_for(url, broker, prefix, "bench-backlog"))
        ingest.start()  # the persistent session the backlog queues for
        ingest.stop()
        sent = 0
        for chunk_start in range(0, messages, 200_000):
            size = min(200_000, messages - chunk_start)
            stream = message_stream(community, prefix, size, seed=chunk_start + 1)
            sent += run_load(broker, prefix, stream=stream).acknowledged
        process = start_ingest(url, broker, prefix, "bench-backlog")
        engine = make_engine(url)
        peak_kib, began = 0, time.perf_counter()
        last, still_since = -1, time.perf_counter()
        try:
            while time.perf_counter() - still_since < 5:
                peak_kib = max(peak_kib, tree_rss_kb(process.pid))
                with engine.connect() as conn:
                    rows = conn.execute(
                        text(
                            "SELECT (SELECT count(*) FROM passage) + (SELECT count(*) FROM reading)"
                            " + (SELECT count(*) FROM duty_event)"
                        )
                    ).scalar_one()
                if rows != last:
                    last, still_since = rows, time.perf_counter()
                time.sleep(1)
        finally:
            process.terminate()
            process.wait(60)
            engine.dispose()
    return {
        "messages": sent,
        "rows": last,
        "peak_mib": peak_kib / 1024,
        "seconds": time.perf_counter() - began - 5,
    }


def percentile(values: list[float], pct: int) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[pct - 1]
        if len(values) > 1
        else values[0]
    )


@dataclass
class Results:
    throughput: dict[str, dict[str, float]]
    latency: dict[str, dict[str, float]]
    backlog: dict[str, float] | None


def render(results: Results, args: argparse.Namespace) -> str:
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
        f"(`python bench/bench_ingest.py --messages {args.messages}"
        f"{f' --backlog {args.backlog}' if args.backlog else ''}`). "
        "The machine is shared and noisy: compare the ratios, not the absolute figures.",
        "",
        "| database | publish (msg/s) | ceiling: bare subscriber (msg/s) "
        "| ingest to committed rows (msg/s) | ingest / ceiling | target "
        "| processing alone, no MQTT (msg/s) | ingest with its writer thread (msg/s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, figures in results.throughput.items():
        ratio = figures["ingest"] / figures["ceiling"]
        verdict = "met" if figures["ingest"] >= 10_000 and ratio >= 0.8 else "**not met**"
        lines.append(
            f"| {kind} | {figures['publish']:,.0f} | {figures['ceiling']:,.0f} | "
            f"{figures['ingest']:,.0f} | {ratio:.2f} | ≥ 10,000 msg/s and ≥ 0.8: {verdict} | "
            f"{figures['processing']:,.0f} | {figures['ingest_thread']:,.0f} |"
        )
    for kind, figures in results.throughput.items():
        serial = 1 / (1 / figures["ceiling"] + 1 / figures["processing"])
        lines += [
            "",
            (
                f"{kind}: receiving costs {1e6 / figures['ceiling']:.0f} µs a message (the "
                f"ceiling) and storing it {1e6 / figures['processing']:.0f} µs (processing "
                f"alone); done one after the other in one process they predict "
                f"{serial:,.0f} msg/s: ingest with its writer thread (CPM_INGEST_WRITER="
                f"thread) achieved {figures['ingest_thread']:,.0f}, and with its writer "
                f"process (the default), which overlaps the two, {figures['ingest']:,.0f}."
            ),
        ]
    lines += [
        "",
        f"Publish→commit latency at {args.latency_rate:,} msg/s for {args.latency_seconds} s:",
        "",
        "| database | baseline publish→receive p50 / p99 (ms) "
        "| publish→commit p50 / p99 (ms) | p99 / baseline p99 |",
        "|---|---|---|---|",
    ]
    for kind, f in results.latency.items():
        lines.append(
            f"| {kind} | {f['baseline_p50'] * 1000:.1f} / {f['baseline_p99'] * 1000:.1f} | "
            f"{f['p50'] * 1000:.1f} / {f['p99'] * 1000:.1f} | "
            f"{f['p99'] / f['baseline_p99']:.1f}× |"
        )
    if results.backlog:
        b = results.backlog
        verdict = "met" if b["peak_mib"] < 200 else "**not met**"
        lines += [
            "",
            f"Backlog: `cpmon ingest` (SQLite) drained {b['messages']:,.0f} queued messages "
            f"into {b['rows']:,.0f} rows in {b['seconds']:.0f} s with a peak RSS of "
            f"{b['peak_mib']:.0f} MiB, its writer process and multiprocessing's resource "
            f"tracker included (target < 200 MiB: {verdict}).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--latency-rate", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=int, default=15)
    parser.add_argument("--backlog", type=int, default=0, help="also the memory run (e.g. 1000000)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update the docs")
    args = parser.parse_args()
    community = generate_community()
    results = Results({}, {}, None)
    for kind in args.databases.split(","):
        results.throughput[kind] = throughput(kind, community, args.messages)
        print(kind, "throughput", results.throughput[kind], flush=True)
        results.latency[kind] = latency(kind, community, args.latency_rate, args.latency_seconds)
        print(kind, "latency", results.latency[kind], flush=True)
    if args.backlog:
        results.backlog = backlog_memory(community, args.backlog)
        print("backlog", results.backlog, flush=True)
    section = render(results, args)
    print(section)
    if not args.no_write:
        write_section("ingest", "Ingest: throughput, latency, memory", section)


if __name__ == "__main__":
    main()
