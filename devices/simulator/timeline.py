"""The simulation as a time-ordered stream of device actions.

An `Item` is one thing a device does at a simulated instant: connect, publish a message,
drop off, disconnect. Items that publish a passage or a reading carry what ingest is
expected to make of them, so the manifest is counted from exactly what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from services.core.enums import Registration, Screening
from services.core.protocol import DeviceMessage, device_topic


class Op(StrEnum):
    CONNECT = "connect"  # connect with a will (`message` is the will's offline status)
    PUBLISH = "publish"
    DROP = "drop"  # the connection dies without a DISCONNECT: the broker sends the will
    DISCONNECT = "disconnect"  # a clean DISCONNECT: no will


@dataclass(frozen=True, slots=True)
class PassageExpectation:
    kind: str  # person | vehicle
    direction: str
    registration: Registration
    quarantined: bool
    screening: Screening | None  # None: unscreened (persons) or not applicable (vehicles)
    fever: bool  # temp_c inside the entry is a fever
    incidents: tuple[str, ...]  # what this passage was made to show (empty: nothing wrong)


@dataclass(frozen=True, slots=True)
class ReadingExpectation:
    fever: bool
    implausible: bool
    linked: bool  # carries entry_msg_id
    screens: bool  # screens a passage (plausible, and linked or alone in its window)


@dataclass(slots=True)
class Item:
    t: float  # simulated epoch seconds when the device does it
    order: int  # deterministic tie-break between items at the same instant
    checkpoint_id: str
    op: Op
    kind: str = ""  # message kind of a publish
    message: DeviceMessage | None = None
    msg_id: str | None = None
    retain: bool = False
    duplicate: bool = False  # published twice with the same msg_id (QoS-1 redelivery)
    drift_s: float = 0.0  # the device clock runs this far ahead (stamped at publish)
    backlog: bool = False  # produced while offline, published on reconnect
    passage: PassageExpectation | None = None
    reading: ReadingExpectation | None = None

    def topic(self, prefix: str) -> str:
        return device_topic(prefix, self.checkpoint_id, self.kind)

    def sort_key(self) -> tuple[float, int]:
        return (self.t, self.order)


class Stamp:
    """RFC 3339 timestamps in the community's time zone, as a device would send them."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def __call__(self, t: float) -> str:
        return datetime.fromtimestamp(t, self.zone).isoformat(timespec="milliseconds")

    @staticmethod
    def utc(t: float) -> datetime:
        return datetime.fromtimestamp(t, UTC)


class Counter:
    """Monotonic numbers: message ids and the order of items."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.n = 0

    def next(self) -> int:
        self.n += 1
        return self.n

    def msg_id(self) -> str:
        return f"{self.tag}-{self.next():x}"


def run_tag(seed: int, start: float) -> str:
    """Message ids differ between runs with different seeds or start times, so a second
    simulated day is not collapsed into the first as duplicates."""
    return f"s{seed}-{int(start):x}"
