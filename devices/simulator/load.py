"""Load mode: a realistic message mix, published as fast as asked, for benchmarks.

    stream = message_stream(community, prefix, count=100_000)     # deterministic
    report = run_load("mqtt://127.0.0.1:1883", prefix, stream=stream, rate=None)

Payloads are encoded before the clock starts and spread over a few connections (a
checkpoint always on the same one, so its entries precede their readings), written in
batches by one thread (see rawmqtt.py for why not paho here).
"""

from __future__ import annotations

import random
import selectors
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from services.core.demo import DemoCommunity
from services.core.protocol import (
    DutyMessage,
    EntryMessage,
    HeartbeatMessage,
    ReadingMessage,
    device_topic,
    encode,
)
from services.core.settings import MqttEndpoint

from .network import NetworkError
from .rawmqtt import MqttRefused, RawPublisher
from .staffing import shift_staff
from .timeline import Stamp

# Shares of the mix (roughly a real day: as many heartbeats as passages, few duty events)
DEFAULT_MIX = {"entry": 0.45, "reading": 0.20, "heartbeat": 0.30, "duty": 0.05}
STEP_S = 0.001  # timestamps advance 1 ms per message
WINDOW = 20_000  # unacknowledged QoS-1 messages per connection (packet ids wrap at 65535)
BATCH_BYTES = 64 * 1024
PACE_S = 0.001


@dataclass(frozen=True, slots=True)
class LoadReport:
    sent: int
    acknowledged: int
    seconds: float
    rate: float  # acknowledged messages per second
    target_rate: float | None
    connections: int
    qos: int

    def __str__(self) -> str:
        target = f" (asked {self.target_rate:,.0f})" if self.target_rate else ""
        return (
            f"{self.acknowledged:,} of {self.sent:,} messages acknowledged in "
            f"{self.seconds:.2f} s: {self.rate:,.0f} msg/s{target}, QoS {self.qos}, "
            f"{self.connections} connection(s)"
        )


def message_stream(
    community: DemoCommunity,
    prefix: str,
    count: int,
    *,
    seed: int = 1,
    start: datetime | None = None,
    mix: dict[str, float] | None = None,
    timezone: str = "Asia/Shanghai",
) -> list[tuple[str, bytes]]:
    """`count` (topic, payload) pairs: registered residents (and a few strangers) through
    the gates with their temperatures, heartbeats and duty changes. Deterministic for a
    seed and start; by default the timestamps end a minute before now."""
    rng = random.Random(f"load-{seed}")
    mix = mix or DEFAULT_MIX
    kinds, weights = list(mix), list(mix.values())
    stamp = Stamp(timezone)
    t0 = (start or datetime.now(UTC)).timestamp()
    if start is None:
        t0 -= count * STEP_S + 60
    tag = f"L{seed}-{int(t0):x}"
    people = community.people
    cps = community.checkpoints
    handheld = [cp for cp in cps if not cp.integrated_thermometer]
    last_entry: dict[str, tuple[str, str]] = {}  # handheld cp -> (msg_id, direction)
    on_duty: dict[str, bool] = {}
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        ts = stamp(t0 + i * STEP_S)
        msg_id = f"{tag}-{i:x}"
        kind = rng.choices(kinds, weights)[0]
        if kind == "reading" and last_entry:
            cp_id = rng.choice(handheld).id
            entry = last_entry.get(cp_id)
            body: dict[str, object] = {
                "msg_id": msg_id,
                "ts": ts,
                "direction": "in",
                "temp_c": round(rng.uniform(35.8, 37.0), 1),
            }
            if entry is not None:
                body["entry_msg_id"], body["direction"] = entry
            out.append(
                (
                    device_topic(prefix, cp_id, "reading"),
                    encode(ReadingMessage.model_validate(body)),
                )
            )
            continue
        cp = rng.choice(cps)
        if kind == "heartbeat":
            message = HeartbeatMessage.model_validate({"ts": ts, "uptime_s": i, "backlog": 0})
            out.append((device_topic(prefix, cp.id, "heartbeat"), encode(message)))
        elif kind == "duty":
            staff_id = rng.choice(shift_staff(cp, rng.randrange(3)))
            action = "off" if on_duty.get(staff_id) else "on"
            on_duty[staff_id] = action == "on"
            duty = {"msg_id": msg_id, "ts": ts, "staff_id": staff_id, "action": action}
            out.append(
                (device_topic(prefix, cp.id, "duty"), encode(DutyMessage.model_validate(duty)))
            )
        else:
            direction = rng.choice(("in", "out"))
            body = {"msg_id": msg_id, "ts": ts, "direction": direction}
            if cp.vehicle_gate and community.vehicles and rng.random() < 0.6:
                body.update(kind="vehicle", plate=rng.choice(community.vehicles).plate)
            else:
                person = rng.choice(people)
                body.update(kind="person", id_number=person.id_number)
                if rng.random() < 0.97:
                    body["qr_pass"] = person.pass_code
                if cp.integrated_thermometer:
                    body["temp_c"] = round(rng.uniform(35.8, 37.0), 1)
                else:
                    last_entry[cp.id] = (msg_id, direction)
            out.append(
                (device_topic(prefix, cp.id, "entry"), encode(EntryMessage.model_validate(body)))
            )
    return out


def run_load(
    mqtt_url: str,
    prefix: str,
    community: DemoCommunity | None = None,
    rate: float | None = None,
    count: int | None = None,
    *,
    duration_s: float | None = None,
    qos: int = 1,
    connections: int = 2,
    stream: Sequence[tuple[str, bytes]] | None = None,
    seed: int = 1,
    client_id_prefix: str | None = None,
    ca_file: str | None = None,
    on_progress: Callable[[int, float], None] | None = None,
    ack_timeout_s: float = 60.0,
) -> LoadReport:
    """Publish `stream` (or `count` messages of a fresh one, or `rate * duration_s`) at
    `rate` messages/s (None: as fast as the broker takes them) and report the rate."""
    if stream is None:
        if count is None:
            if rate is None or duration_s is None:
                raise ValueError("give a stream, a count, or a rate and a duration")
            count = int(rate * duration_s)
        if community is None:
            raise ValueError("a community is needed to build the message stream")
        stream = message_stream(community, prefix, count, seed=seed)
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive")
    if qos not in (0, 1):
        raise ValueError("load mode publishes with QoS 0 or 1")
    endpoint = MqttEndpoint(mqtt_url)
    base = client_id_prefix or f"cpm-load-{uuid.uuid4().hex[:8]}"
    try:
        conns = [RawPublisher(endpoint, f"{base}-{n}", ca_file) for n in range(connections)]
    except (OSError, MqttRefused) as exc:
        raise NetworkError(f"load: cannot connect to {endpoint!r}: {exc}") from exc
    selector = selectors.DefaultSelector()
    for conn in conns:
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    lanes: dict[str, RawPublisher] = {}

    def pump(timeout: float) -> None:
        for conn in conns:
            conn.flush()
        for key, _ in selector.select(timeout):
            key.data.read()

    started = shown = time.monotonic()
    try:
        for i, (topic, payload) in enumerate(stream):
            if rate is not None:
                # sleep at least 1 ms at a time: messages go out in small batches
                while (due := (time.monotonic() - started) * rate) < i:
                    pump(max((i - due) / rate, PACE_S))
            lane = topic.rsplit("/", 2)[-2]  # the checkpoint: its messages stay in order
            conn = lanes.get(lane) or lanes.setdefault(lane, conns[len(lanes) % len(conns)])
            while conn.pending >= WINDOW:
                pump(0.001)
            conn.queue(topic, payload, qos)
            if len(conn.out) >= BATCH_BYTES:
                conn.flush()
            if i % 512 == 0:
                pump(0)
                if on_progress and time.monotonic() - shown > 0.25:
                    shown = time.monotonic()
                    on_progress(i, shown - started)
        deadline = time.monotonic() + ack_timeout_s
        pump(0)
        while any(c.pending or c.out for c in conns) and time.monotonic() < deadline:
            pump(0.01)
            for conn in conns:
                conn.keepalive()
        seconds = time.monotonic() - started
    finally:
        for conn in conns:
            conn.close()
        selector.close()
    acked = sum(c.acked for c in conns) if qos else len(stream)
    return LoadReport(
        len(stream), acked, seconds, acked / seconds if seconds else 0.0, rate, connections, qos
    )
