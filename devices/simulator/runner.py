"""`Simulation`: play a plan through the broker and return its manifest.

    manifest = Simulation(params, community, mqtt_url=..., topic_prefix=...).run()

Simulated time maps onto real time by `params.speed` (0: as fast as the broker takes
it). A device's timestamps are simulated time; a drifting device's clock is stamped at
publish time, ahead of the later of simulated and wall-clock time, so ingest sees it.

`run(on_tick=f, tick_s=30)` also calls `f(t)` at every `tick_s` of simulated time, once
everything the devices did before `t` is with the broker: the hook for running
services on the simulated clock (`Simulation.now`), e.g. the alert timers in tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.core.demo import DemoCommunity, generate_community
from services.core.protocol import StatusMessage, encode
from services.core.settings import MqttEndpoint, Settings, get_settings

from .manifest import ManifestBuilder
from .network import Credentials, DeviceNetwork
from .params import SimulationParams
from .plan import Plan
from .progress import Progress
from .timeline import Item, Op

log = logging.getLogger(__name__)
PUMP_EVERY = 64  # items between network reads when running flat out

RECONNECT_PAUSE_S = 0.3  # real seconds between an abrupt drop and the reconnect


class Simulation:
    def __init__(
        self,
        params: SimulationParams,
        community: DemoCommunity | None = None,
        *,
        settings: Settings | None = None,
        mqtt_url: str | None = None,
        topic_prefix: str | None = None,
        credentials: dict[str, Credentials] | None = None,
        client_id_template: str = "sim-{checkpoint_id}",
        progress: bool | None = None,
        max_rate: float | None = None,
        community_seed: int = 2020,
        people: int = 69_000,
    ) -> None:
        if settings is None and (mqtt_url is None or topic_prefix is None):
            settings = get_settings()
        self.params = params
        self.community = community or generate_community(seed=community_seed, people=people)
        self.mqtt_url = mqtt_url or (settings.mqtt_url if settings else "")
        self.topic_prefix = (topic_prefix or (settings.topic_prefix if settings else "")).strip("/")
        self.ca_file = settings.mqtt_ca_file if settings else None
        self.mqtt_protocol = settings.mqtt_protocol if settings else "5"
        self.credentials = credentials
        self.client_id_template = client_id_template
        self.progress = Progress(progress, timezone=params.timezone)
        # At full speed a run can outpace a subscriber, and Mosquitto drops QoS-1 messages
        # beyond its queue limit (max_queued_messages, 1000 by default): cap the rate.
        self.max_rate = max_rate
        self.start = params.resolve_start()
        self.plan = Plan(params, self.community, self.start.timestamp())
        self.builder = ManifestBuilder(self.plan, self._meta())
        self.messages_published = 0
        self.wills_caused = 0  # abrupt drops: the broker publishes the device's will
        self.now = self.plan.start  # simulated time of what the devices are doing

    def _meta(self) -> dict[str, Any]:
        p = self.params
        return {
            "seed": p.seed,
            "scenario": p.scenario,
            "duration_s": p.duration_s,
            "speed": p.speed,
            "topic_prefix": self.topic_prefix,
            "fever_threshold_c": p.fever_threshold_c,
            "heartbeat_s": p.heartbeat_s,
            "community": {
                "seed": self.community.seed,
                "people": len(self.community.people),
                "vehicles": len(self.community.vehicles),
                "quarantined": sum(person.quarantined for person in self.community.people),
            },
            "rates": {name: getattr(p.rates, name) for name in p.rates.__dataclass_fields__},
        }

    def dry_run(self) -> dict[str, Any]:
        """The manifest of the run without touching the broker."""
        for item in self.plan.items():
            self.builder.add(item)
        return self.builder.build()

    @property
    def deliveries(self) -> int:
        """Messages a subscriber to every device topic has been sent so far: what the
        devices published (second copies included) and the wills their drops caused."""
        return self.messages_published + self.wills_caused

    def run(
        self, on_tick: Callable[[float], None] | None = None, tick_s: float = 60.0
    ) -> dict[str, Any]:
        """Play the plan; with `on_tick`, call it at start + k * `tick_s` (up to the end)
        before the first item at or after that instant, once the broker acknowledged
        everything published before it. `now` is the tick's time during the call."""
        if on_tick is not None and tick_s <= 0:
            raise ValueError("tick_s must be positive")
        network = DeviceNetwork(
            MqttEndpoint(self.mqtt_url),
            self.plan.checkpoints,
            self.client_id_template,
            self.credentials,
            self.ca_file,
            self.mqtt_protocol,
        )
        completed, unacknowledged = False, 0
        sim0, real0, speed = self.plan.start, time.monotonic(), self.params.speed
        ticks = 1
        try:
            for n, item in enumerate(self.plan.items()):
                while on_tick is not None and item.t >= (tick := sim0 + ticks * tick_s):
                    network.await_acks()
                    self.now = tick
                    on_tick(tick)
                    ticks += 1
                self.now = max(self.now, item.t)  # a replayed backlog is sent now
                if speed > 0:
                    self._wait(network, real0 + (item.t - sim0) / speed)
                if self.max_rate:
                    self._wait(network, real0 + self.messages_published / self.max_rate)
                if n % PUMP_EVERY == 0:
                    network.pump(0)
                self._execute(network, item)
                self.builder.add(item)
                self.progress.update(item.t, self.messages_published, self.builder.incidents)
            unacknowledged = network.await_acks()
            completed = True
        finally:
            network.close()
            self.progress.done()
        if unacknowledged:
            log.warning("%d messages were not acknowledged by the broker", unacknowledged)
        return self.builder.build(completed, unacknowledged)

    @staticmethod
    def _wait(network: DeviceNetwork, target: float) -> None:
        while (left := target - time.monotonic()) > 0:
            network.pump(min(left, 0.05))

    def _execute(self, network: DeviceNetwork, item: Item) -> None:
        link = network.links[item.checkpoint_id]
        if item.op is Op.CONNECT:
            assert isinstance(item.message, StatusMessage)
            # a real device takes a while to come back; one back at once (speed 0) could
            # reach a loaded broker before it saw the dead connection and sent the will
            self._wait(network, link.dropped_at + RECONNECT_PAUSE_S)
            link.connect(item.topic(self.topic_prefix), encode(item.message))
            network.should_be_online.add(item.checkpoint_id)
            network.await_connected([item.checkpoint_id])
        elif item.op in (Op.DROP, Op.DISCONNECT):
            network.should_be_online.discard(item.checkpoint_id)
            # what is in flight first, so a drop adds no redelivered duplicates
            network.await_acks([item.checkpoint_id], timeout=10.0)
            if item.op is Op.DROP:
                link.drop()
                self.wills_caused += 1
                link.dropped_at = time.monotonic()
            else:
                link.disconnect()
        else:
            payload = self._payload(item)
            topic = item.topic(self.topic_prefix)
            for _ in range(2 if item.duplicate else 1):
                link.publish(topic, payload, item.retain)
                self.messages_published += 1

    def _payload(self, item: Item) -> bytes:
        assert item.message is not None
        if not item.drift_s:
            return encode(item.message)
        clock = max(item.t, time.time()) + item.drift_s
        ts = datetime.fromtimestamp(clock, UTC).astimezone(self.plan.stamp.zone)
        return encode(item.message.model_copy(update={"ts": ts}))
