"""The whole run, planned from the seed: a deterministic, time-ordered stream of items.

`Plan(params, community, start).items()` yields what every device does, slice by slice
of simulated time (so a day of 69,000 people never sits in memory at once). The device
state machine at the end of the pipeline decides what a device holds back while it is
offline and publishes, with the original timestamps, when it reconnects.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from services.core.demo import DemoCommunity
from services.core.protocol import (
    DutyMessage,
    EntryMessage,
    HeartbeatMessage,
    ReadingMessage,
    StatusMessage,
)

from .incidents import plan_duty, plan_scenario_passages, plan_windows
from .params import SimulationParams
from .population import Population
from .staffing import DutyChange
from .timeline import Counter, Item, Op, PassageExpectation, ReadingExpectation, Stamp, run_tag
from .traffic import READING_DELAY_S, PlannedPassage, Traffic

CHUNK_S = 3600.0
FIRMWARE = "cpm-sim/1.0"


@dataclass(slots=True)
class DeviceState:
    online: bool = False
    connected_at: float = 0.0
    backlog: list[Item] = field(default_factory=list)


class Plan:
    def __init__(self, params: SimulationParams, community: DemoCommunity, start: float) -> None:
        self.params = params
        self.community = community
        self.start = start
        self.end = start + params.duration_s
        self.stamp = Stamp(params.timezone)
        self.counter = Counter(run_tag(params.seed, start))
        self.population = Population(community, params.seed)
        self.checkpoints = {cp.id: cp for cp in community.checkpoints}
        self.rosters = plan_duty(params, community, start, self.end)
        self.windows = plan_windows(params, list(self.checkpoints), start, self.end)
        self.rng = random.Random(f"{params.seed}-traffic")
        self.traffic = Traffic(params, community, self.population, self.rosters, self.rng)
        self.traffic.no_unlinked = {w.checkpoint_id for w in self.windows if w.kind == "drift"}
        self.forced = plan_scenario_passages(params, community, self.traffic, start, self.end)

    # --- the stream --------------------------------------------------------------------
    def items(self) -> Iterator[Item]:
        heap: list[tuple[float, int, Item]] = []
        devices = {cp_id: DeviceState() for cp_id in self.checkpoints}
        for cp_id in self.checkpoints:
            yield from self._connect(cp_id, self.start, devices[cp_id])
        for roster in self.rosters.values():
            for change in roster.changes():
                self._push(heap, self._duty(roster.checkpoint.id, change.t, change))
        for window in self.windows:
            if window.kind in ("drop", "outage"):
                op = Op.DROP if window.kind == "drop" else Op.DISCONNECT
                self._push(heap, Item(window.start, self.counter.next(), window.checkpoint_id, op))
                back = Item(window.end, self.counter.next(), window.checkpoint_id, Op.CONNECT)
                self._push(heap, back)
        c0 = self.start
        forced = list(self.forced)
        while c0 < self.end:
            c1 = min(c0 + CHUNK_S, self.end)
            gen_end = min(c1, self.end - 30)
            self._heartbeats(heap, c0, c1)
            if gen_end > c0:
                mine = [p for p in forced if c0 <= p.t < gen_end]
                for passage in self.traffic.chunk(c0, gen_end, mine):
                    for item in self._passage_items(passage):
                        self._push(heap, item)
            while heap and heap[0][0] < c1:
                item = heapq.heappop(heap)[2]
                yield from self._device_step(item, devices[item.checkpoint_id])
            c0 = c1
        if self.params.final_status:
            for cp_id in sorted(self.checkpoints):
                if devices[cp_id].online:
                    yield self._status(cp_id, self.end, "offline")
                    yield Item(self.end, self.counter.next(), cp_id, Op.DISCONNECT)

    def _heartbeats(self, heap: list[tuple[float, int, Item]], c0: float, c1: float) -> None:
        """Every device every `heartbeat_s`, phases spread so they do not all fire at once."""
        every = self.params.heartbeat_s
        for i, cp_id in enumerate(sorted(self.checkpoints)):
            first = self.start + every * (i + 1) / (len(self.checkpoints) + 1)
            k = max(0, math.ceil((c0 - first) / every))
            t = first + k * every
            while t < c1:
                self._push(heap, Item(t, self.counter.next(), cp_id, Op.PUBLISH, "heartbeat"))
                t += every

    def _push(self, heap: list[tuple[float, int, Item]], item: Item) -> None:
        heapq.heappush(heap, (item.t, item.order, item))

    def _device_step(self, item: Item, device: DeviceState) -> Iterator[Item]:
        """What the device does with an item, given whether it is connected."""
        if item.op in (Op.DROP, Op.DISCONNECT):
            device.online = False
            yield item
            return
        if item.op is Op.CONNECT:
            yield from self._connect(item.checkpoint_id, item.t, device)
            return
        if item.kind == "heartbeat":
            if not device.online:
                return  # a liveness signal is not worth keeping
            item.message = HeartbeatMessage.model_validate(
                {
                    "ts": self.stamp(item.t),
                    "uptime_s": int(item.t - device.connected_at),
                    "backlog": 0,
                }
            )
        if item.kind in ("entry", "reading", "heartbeat"):
            item.drift_s = self._drift(item.checkpoint_id, item.t)
        if device.online:
            yield item
        else:
            item.backlog = True
            device.backlog.append(item)

    def _connect(self, cp_id: str, t: float, device: DeviceState) -> Iterator[Item]:
        will = StatusMessage.model_validate(
            {"state": "offline", "ts": self.stamp(t), "firmware": FIRMWARE}
        )
        yield Item(t, self.counter.next(), cp_id, Op.CONNECT, "status", will, retain=True)
        yield self._status(cp_id, t, "online")
        heartbeat = HeartbeatMessage.model_validate(
            {"ts": self.stamp(t), "uptime_s": 0, "backlog": len(device.backlog)}
        )
        yield Item(t, self.counter.next(), cp_id, Op.PUBLISH, "heartbeat", heartbeat)
        device.online, device.connected_at = True, t
        backlog, device.backlog = device.backlog, []
        yield from backlog

    def _status(self, cp_id: str, t: float, state: str) -> Item:
        message = StatusMessage.model_validate(
            {"state": state, "ts": self.stamp(t), "firmware": FIRMWARE}
        )
        return Item(t, self.counter.next(), cp_id, Op.PUBLISH, "status", message, retain=True)

    def _drift(self, cp_id: str, t: float) -> float:
        for window in self.windows:
            drifting = window.kind == "drift" and window.checkpoint_id == cp_id
            if drifting and window.start <= t < window.end:
                return window.offset_s
        return 0.0

    def _duplicate(self) -> bool:
        return self.rng.random() < self.params.rates.duplicate

    def _duty(self, cp_id: str, t: float, change: DutyChange) -> Item:
        msg_id = self.counter.msg_id()
        message = DutyMessage.model_validate(
            {
                "msg_id": msg_id,
                "ts": self.stamp(t),
                "staff_id": change.staff_id,
                "action": change.action,
            }
        )
        return Item(
            t,
            self.counter.next(),
            cp_id,
            Op.PUBLISH,
            "duty",
            message,
            msg_id,
            duplicate=self._duplicate(),
        )

    def _passage_items(self, p: PlannedPassage) -> Iterator[Item]:
        cp, threshold = p.checkpoint, self.params.fever_threshold_c
        msg_id = self.counter.msg_id()
        body: dict[str, object] = {
            "msg_id": msg_id,
            "ts": self.stamp(p.t),
            "direction": p.direction,
            "kind": p.kind,
        }
        if p.kind == "person":
            if p.shown.id_number is not None:
                body["id_number"] = p.shown.id_number
            if p.shown.qr_pass is not None:
                body["qr_pass"] = p.shown.qr_pass
        else:
            body["plate"] = p.shown.plate
        entry_temp = p.kind == "person" and cp.integrated_thermometer and p.temp is not None
        if entry_temp:
            body["temp_c"] = p.temp
        incidents = tuple(x for x in (p.incident, p.temp_label) if x and x != "normal")
        expectation = PassageExpectation(
            kind=p.kind,
            direction=p.direction,
            registration=self.population.expected_registration(
                p.kind, p.shown, self.stamp.utc(p.t)
            ),
            quarantined=p.kind == "person" and self.population.is_quarantined(p.shown),
            screening=self.traffic.expected_screening(p),
            fever=entry_temp and _fever(p.temp, threshold),
            incidents=incidents,
        )
        yield Item(
            p.t,
            self.counter.next(),
            cp.id,
            Op.PUBLISH,
            "entry",
            EntryMessage.model_validate(body),
            msg_id,
            duplicate=self._duplicate(),
            passage=expectation,
        )
        if p.kind != "person" or cp.integrated_thermometer or p.temp is None:
            return
        t = p.t + self.rng.uniform(*READING_DELAY_S)
        reading_id = self.counter.msg_id()
        operators = self.rosters[cp.id].on_duty(p.t)
        reading: dict[str, object] = {
            "msg_id": reading_id,
            "ts": self.stamp(t),
            "temp_c": p.temp,
            "direction": p.direction,
        }
        if operators:
            reading["operator"] = self.rng.choice(operators)
        if not p.unlinked:
            reading["entry_msg_id"] = msg_id
        implausible = not 30.0 <= p.temp <= 45.0
        yield Item(
            t,
            self.counter.next(),
            cp.id,
            Op.PUBLISH,
            "reading",
            ReadingMessage.model_validate(reading),
            reading_id,
            duplicate=self._duplicate(),
            reading=ReadingExpectation(
                fever=_fever(p.temp, threshold),
                implausible=implausible,
                linked=not p.unlinked,
                screens=not implausible,
            ),
        )


def _fever(temp: float | None, threshold: float) -> bool:
    return temp is not None and 30.0 <= temp <= 45.0 and temp >= threshold
