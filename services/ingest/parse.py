"""From the bytes the broker delivered to a typed device message, or the reason it
cannot be one (a dead letter). Pure: the registry's checkpoint ids are passed in."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime

from services.core.enums import DeadLetterReason
from services.core.identity import redact
from services.core.protocol import DeviceMessage, DeviceTopic, ProtocolError, parse_message


@dataclass(slots=True)
class Inbound:
    """A message as the broker delivered it."""

    topic: str
    payload: bytes
    received_at: datetime
    mid: int = 0
    qos: int = 0
    generation: int = 0  # which connection delivered it (acks only go back on that one)


@dataclass(slots=True)
class Accepted:
    inbound: Inbound
    checkpoint_id: str
    kind: str
    message: DeviceMessage


@dataclass(slots=True)
class Rejected:
    """A message that goes to the dead letters. Whatever of it may be shown or logged is
    redacted here, once: a device may put an ID number anywhere, even in the topic."""

    inbound: Inbound
    reason: DeadLetterReason
    detail: str
    checkpoint_id: str | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        self.detail = redact(self.detail)
        self.checkpoint_id = redact(self.checkpoint_id) if self.checkpoint_id else None
        self.kind = redact(self.kind)[:32] if self.kind else None


def parse_inbound(
    inbound: Inbound, prefix: str, known_checkpoints: Container[str], max_bytes: int
) -> Accepted | Rejected:
    """Topic and payload to a typed message, or the reason it cannot be one."""
    checkpoint_id = kind = None
    try:
        topic = DeviceTopic.parse(inbound.topic, prefix)
        checkpoint_id, kind = topic.checkpoint_id, topic.kind
        message = parse_message(kind, inbound.payload, max_bytes)
    except ProtocolError as exc:
        return Rejected(inbound, exc.reason, exc.detail, checkpoint_id, kind)
    if checkpoint_id not in known_checkpoints:
        return Rejected(
            inbound,
            DeadLetterReason.UNKNOWN_CHECKPOINT,
            f"checkpoint {checkpoint_id!r} is not in the registry",
            checkpoint_id,
            kind,
        )
    return Accepted(inbound, checkpoint_id, kind, message)
