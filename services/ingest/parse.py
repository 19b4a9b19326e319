"""From the bytes the broker delivered to a typed device message, or the reason it
cannot be one (a dead letter). Pure: the registry's checkpoint ids are passed in."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.core.enums import DeadLetterReason
from services.core.identity import redact
from services.core.protocol import (
    MESSAGE_TYPES,
    DeviceMessage,
    DeviceTopic,
    ProtocolError,
    parse_message,
)


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


_VALIDATORS: dict[str, Any] = {
    kind: model.__pydantic_validator__ for kind, model in MESSAGE_TYPES.items()
}


def fast_message(kind: str, payload: bytes, max_bytes: int) -> DeviceMessage | None:
    """The message, parsed and validated in one pass by pydantic's own JSON parser (half
    the cost of json.loads + model_validate), for a payload on which both parsers agree:
    `is_plain`. None for anything else, or anything invalid:
    then `parse_message` decides, and says why (the dead-letter reasons are its own)."""
    validator = _VALIDATORS.get(kind)
    if validator is None or len(payload) > max_bytes or not is_plain(payload):
        return None
    try:
        message: DeviceMessage = validator.validate_json(payload)
    except ValidationError:
        return None
    return message


def is_plain(payload: bytes) -> bool:
    """Bytes on which Python's json and pydantic's parser agree: ASCII without escapes
    (which may hide surrogates or NUL) or NaN / Infinity (which json accepts and pydantic
    reads otherwise). Control characters are refused by both, and whitespace taken."""
    return (
        payload.isascii()
        and b"\\" not in payload
        and b"NaN" not in payload
        and b"Infinity" not in payload
    )


def parse_topic(topic: str, prefix: str) -> tuple[str, str]:
    """(checkpoint id, kind) of a device topic; raises ProtocolError."""
    parsed = DeviceTopic.parse(topic, prefix)
    return parsed.checkpoint_id, parsed.kind


def parse_inbound(
    inbound: Inbound,
    prefix: str,
    known_checkpoints: Container[str],
    max_bytes: int,
    topics: dict[str, tuple[str, str]] | None = None,
) -> Accepted | Rejected:
    """Topic and payload to a typed message, or the reason it cannot be one. `topics`:
    the valid topics already parsed (a cache the caller keeps and bounds)."""
    checkpoint_id = kind = None
    try:
        known_topic = topics.get(inbound.topic) if topics is not None else None
        if known_topic is None:
            known_topic = parse_topic(inbound.topic, prefix)
            if topics is not None:
                topics[inbound.topic] = known_topic
        checkpoint_id, kind = known_topic
        message = fast_message(kind, inbound.payload, max_bytes) or parse_message(
            kind, inbound.payload, max_bytes
        )
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
