"""The simulator through the real broker: what a subscriber receives is what the manifest
says was sent (per kind, duplicates with the same msg_id, wills on abrupt drops, the
outage backlog with its original timestamps), and load mode delivers its stream."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.simulator.load import message_stream, run_load
from devices.simulator.network import clear_retained_status
from devices.simulator.params import IncidentRates
from devices.simulator.runner import Simulation
from devices.simulator.scenarios import scenario_params
from services.core.demo import DemoCommunity
from services.core.settings import MqttEndpoint
from tests.support import wait_until

MAX_RATE = 3000.0  # what a paho subscriber takes without the broker dropping QoS-1 messages
RATES = replace(IncidentRates(), duplicate=0.05, device_drop=6.0, fever=0.02, unscreened=0.02)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def checkpoint_id(self) -> str:
        return self.topic.split("/")[-2]

    @property
    def kind(self) -> str:
        return self.topic.split("/")[-1]

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.payload)
        return body


class Listener:
    """Subscribes to everything under the prefix, in arrival order."""

    def __init__(self, mqtt_url: str, topic: str) -> None:
        parts = urlsplit(mqtt_url)
        self.messages: list[Received] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-listen-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        wait_until(self._subscribed.is_set, timeout=10)

    def _on_message(self, client: Any, userdata: Any, m: mqtt.MQTTMessage) -> None:
        if m.payload:  # empty: a test clearing the retained status after the run
            self.messages.append(Received(m.topic, bytes(m.payload), m.retain))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listener(mqtt_url: str, topic_prefix: str) -> Iterator[Listener]:
    listening = Listener(mqtt_url, f"{topic_prefix}/cp/+/+")
    yield listening
    listening.close()


def simulate(
    community: DemoCommunity, mqtt_url: str, prefix: str, scenario: str, **values: Any
) -> dict[str, Any]:
    params = scenario_params(
        scenario,
        **{
            "seed": 11,
            "duration_s": 3 * 3600,
            "speed": 0,
            "passages_per_person_day": 12.0,
            "heartbeat_s": 300.0,
            "rates": RATES,
            **values,
        },
    )
    simulation = Simulation(
        params,
        community,
        mqtt_url=mqtt_url,
        topic_prefix=prefix,
        client_id_template=f"sim-{uuid.uuid4().hex[:6]}-{{checkpoint_id}}",
        progress=False,
        max_rate=MAX_RATE,
    )
    try:
        return simulation.run()
    finally:
        clear_retained_status(MqttEndpoint(mqtt_url), prefix, simulation.plan.checkpoints)


def test_the_broker_delivers_exactly_what_the_manifest_counts(
    small_community: DemoCommunity, mqtt_url: str, topic_prefix: str, listener: Listener
) -> None:
    manifest = simulate(small_community, mqtt_url, topic_prefix, "unregistered-wave")
    totals = manifest["totals"]
    assert manifest["completed"] and manifest["unacknowledged"] == 0
    expected = Counter(totals["messages"]) + Counter(totals["duplicates"])
    expected["status"] += totals["wills_expected"]
    wait_until(lambda: len(listener.messages) >= sum(expected.values()), timeout=30)
    received = Counter(m.kind for m in listener.messages)
    assert received == expected

    # duplicates: the same msg_id twice, never more
    copies = Counter(
        (m.checkpoint_id, m.body["msg_id"])
        for m in listener.messages
        if m.kind in ("entry", "reading", "duty")
    )
    assert sum(1 for n in copies.values() if n == 2) == sum(totals["duplicates"].values())
    assert max(copies.values()) <= 2

    # per checkpoint: passages and the wills of abrupt drops
    offline = Counter(
        m.checkpoint_id
        for m in listener.messages
        if m.kind == "status" and m.body["state"] == "offline"
    )
    entries: dict[str, set[str]] = defaultdict(set)
    for m in listener.messages:
        if m.kind == "entry":
            entries[m.checkpoint_id].add(m.body["msg_id"])
    for cp_id, counts in manifest["checkpoints"].items():
        assert len(entries[cp_id]) == counts["passages_total"], cp_id
        assert offline[cp_id] == counts["wills_expected"] + 1, cp_id  # + the goodbye
    assert totals["wills_expected"] > 0


def test_an_abrupt_drop_fires_the_will_with_the_connect_time(
    small_community: DemoCommunity, mqtt_url: str, topic_prefix: str, listener: Listener
) -> None:
    manifest = simulate(
        small_community,
        mqtt_url,
        topic_prefix,
        "normal-day",
        rates=replace(RATES, device_drop=12.0, duplicate=0.0),
    )
    dropped = {cp: c for cp, c in manifest["checkpoints"].items() if c["wills_expected"]}
    assert dropped
    statuses = manifest["totals"]["messages"]["status"] + manifest["totals"]["wills_expected"]
    wait_until(lambda: sum(m.kind == "status" for m in listener.messages) >= statuses, timeout=30)
    for cp_id, counts in dropped.items():
        statuses = [
            m.body for m in listener.messages if m.checkpoint_id == cp_id and m.kind == "status"
        ]
        online_ts = [s["ts"] for s in statuses if s["state"] == "online"]
        # every drop: the broker published the will, stamped when that connection began
        wills = [s for s in statuses[:-1] if s["state"] == "offline"]
        assert len(wills) == counts["wills_expected"]
        assert all(w["ts"] in online_ts for w in wills)
        windows = [w for w in counts["device_windows"] if w["kind"] == "drop"]
        assert len(windows) == len(wills)


def test_the_outage_backlog_arrives_after_reconnect_with_original_timestamps(
    small_community: DemoCommunity, mqtt_url: str, topic_prefix: str, listener: Listener
) -> None:
    rates = replace(RATES, device_drop=0.0, duplicate=0.0)
    manifest = simulate(
        small_community,
        mqtt_url,
        topic_prefix,
        "broker-outage",
        passages_per_person_day=40.0,
        rates=rates,
    )
    totals = manifest["totals"]
    backlog_total = sum(totals["backlog_messages"].values())
    assert backlog_total > 0
    wait_until(
        lambda: sum(1 for m in listener.messages if m.kind == "status") >= 3 * 102, timeout=30
    )
    replayed = 0
    for cp_id, counts in manifest["checkpoints"].items():
        (window,) = [w for w in counts["device_windows"] if w["kind"] == "outage"]
        t0, t1 = (datetime.fromisoformat(window[k]) for k in ("start", "end"))
        mine = [m for m in listener.messages if m.checkpoint_id == cp_id]
        back = next(
            n
            for n, m in enumerate(mine)
            if m.kind == "status"
            and m.body["state"] == "online"
            and datetime.fromisoformat(m.body["ts"]) == t1
        )
        heartbeat = mine[back + 1]
        assert heartbeat.kind == "heartbeat" and heartbeat.body["backlog"] == window["backlog"]
        held = mine[back + 2 : back + 2 + window["backlog"]]
        for m in held:
            ts = datetime.fromisoformat(m.body["ts"]).astimezone(UTC)
            assert t0 <= ts < t1  # the original time, not the time it was sent
        # and nothing from the outage window was sent before it
        before = [m for m in mine[:back] if m.kind in ("entry", "reading", "duty")]
        assert all(datetime.fromisoformat(m.body["ts"]) < t0 for m in before)
        replayed += len(held)
    assert replayed == backlog_total


def test_load_mode_delivers_its_whole_stream(
    small_community: DemoCommunity, mqtt_url: str, topic_prefix: str, listener: Listener
) -> None:
    stream = message_stream(small_community, topic_prefix, 5000, seed=3)
    # paced: a paho subscriber cannot take the full rate and the broker would drop QoS 1
    report = run_load(mqtt_url, topic_prefix, stream=stream, rate=MAX_RATE, connections=2)
    assert report.sent == report.acknowledged == 5000
    wait_until(lambda: len(listener.messages) >= 5000, timeout=30)
    assert sorted((m.topic, m.payload) for m in listener.messages) == sorted(stream)
    kinds = Counter(topic.rsplit("/", 1)[1] for topic, _ in stream)
    assert set(kinds) == {"entry", "reading", "heartbeat", "duty"}


def test_load_stream_is_deterministic_for_a_seed_and_start(small_community: DemoCommunity) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    first = message_stream(small_community, "p", 500, seed=2, start=start)
    assert first == message_stream(small_community, "p", 500, seed=2, start=start)
    assert first != message_stream(small_community, "p", 500, seed=4, start=start)
