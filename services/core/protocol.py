"""Wire protocol v1: topics and message bodies (see docs/protocol.md).

Devices publish JSON to `{prefix}/cp/{checkpoint_id}/{kind}`. Everything here is pure:
it turns bytes into typed messages or a `ProtocolError` with a reason code and a
human message that never repeats an ID number.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from services.core.enums import DeadLetterReason, Direction, DutyAction, PassageKind

PROTOCOL_VERSION = 1
MAX_PAYLOAD_BYTES = 8192
CHECKPOINT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ProtocolError(Exception):
    """A message that cannot be understood; it goes to the dead-letter table."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# --- topics ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """`{prefix}/cp/{checkpoint_id}/{kind}`"""

    prefix: str
    checkpoint_id: str
    kind: str

    def __str__(self) -> str:
        return f"{self.prefix}/cp/{self.checkpoint_id}/{self.kind}"

    @classmethod
    def parse(cls, topic: str, prefix: str) -> DeviceTopic:
        head = prefix + "/cp/"
        if not topic.startswith(head):
            raise ProtocolError(DeadLetterReason.BAD_TOPIC, f"topic is not under {head}")
        parts = topic[len(head) :].split("/")
        if len(parts) != 2 or not CHECKPOINT_ID_RE.match(parts[0]):
            raise ProtocolError(
                DeadLetterReason.BAD_TOPIC,
                "topic must be {prefix}/cp/{checkpoint_id}/{kind}, checkpoint id [A-Za-z0-9_-]",
            )
        return cls(prefix, parts[0], parts[1])


def device_topic(prefix: str, checkpoint_id: str, kind: str) -> str:
    return str(DeviceTopic(prefix, checkpoint_id, kind))


INGEST_GROUP = "ingest"  # the shared-subscription group of the ingest replicas


def device_subscription(prefix: str) -> str:
    """Everything every device publishes."""
    return f"{prefix}/cp/#"  # wider than the valid topics, so bad ones are dead-lettered


def alerts_topic(prefix: str, checkpoint_id: str) -> str:
    return f"{prefix}/alerts/{checkpoint_id}"


def service_status_topic(prefix: str, service_id: str) -> str:
    """Retained online/offline status of a service process (its MQTT will says offline)."""
    return f"{prefix}/services/{service_id}/status"


def committed_topic(prefix: str) -> str:
    """Where ingest announces, after each commit, the newest row ids it wrote."""
    return f"{prefix}/internal/committed"


# --- field types -----------------------------------------------------------------------
def _rfc3339(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string, e.g. 2026-03-01T08:30:00+08:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise ValueError("needs a UTC offset (Z or +08:00)")
    return parsed


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number (°C)")
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return float(value)


Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]
Temperature = Annotated[float, BeforeValidator(_temperature)]
MsgId = Annotated[str, Field(min_length=1, max_length=64, strict=True)]
ShortText = Annotated[str, Field(min_length=1, max_length=64, strict=True)]


class _Message(BaseModel):
    # Unknown fields are ignored so devices can add fields without breaking ingest.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ReadingMessage(_Message):
    msg_id: MsgId
    ts: Timestamp
    temp_c: Temperature
    direction: Direction
    operator: ShortText | None = None
    entry_msg_id: MsgId | None = None


class EntryMessage(_Message):
    msg_id: MsgId
    ts: Timestamp
    direction: Direction
    kind: PassageKind
    # Identity fields are deliberately loose: a passage with a bad ID or pass is a real
    # event, stored and classified (invalid_id, no_pass...), never dead-lettered.
    id_number: str | None = Field(default=None, max_length=64, strict=True)
    id_type: str = Field(default="resident_id", min_length=1, max_length=20, strict=True)
    qr_pass: str | None = Field(default=None, max_length=128, strict=True)
    plate: str | None = Field(default=None, max_length=16, strict=True)
    temp_c: Temperature | None = None


class DutyMessage(_Message):
    msg_id: MsgId
    ts: Timestamp
    staff_id: ShortText
    action: DutyAction


class StatusMessage(_Message):
    state: Literal["online", "offline"]
    ts: Timestamp
    firmware: ShortText | None = None


class HeartbeatMessage(_Message):
    ts: Timestamp
    uptime_s: Annotated[int, Field(ge=0, strict=True)] | None = None
    backlog: Annotated[int, Field(ge=0, strict=True)] | None = None


DeviceMessage = ReadingMessage | EntryMessage | DutyMessage | StatusMessage | HeartbeatMessage

MESSAGE_TYPES: dict[str, type[_Message]] = {
    "reading": ReadingMessage,
    "entry": EntryMessage,
    "duty": DutyMessage,
    "status": StatusMessage,
    "heartbeat": HeartbeatMessage,
}


def describe_validation_error(error: ValidationError) -> str:
    """Name each bad field and why, without echoing the values (they may be ID numbers)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:5]:
        field = ".".join(str(part) for part in item["loc"]) or "(message)"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{field}: {message}")
    return "; ".join(problems)


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    """Python's json accepts NaN and Infinity; JSON (RFC 8259) does not."""
    raise _NotJson(f"payload is not JSON: {name} is not a JSON number")


def decode_payload(payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """Bytes -> a JSON object, or a ProtocolError saying which step failed."""
    if len(payload) > max_bytes:
        raise ProtocolError(
            DeadLetterReason.OVERSIZE, f"payload is {len(payload)} bytes, limit {max_bytes}"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            DeadLetterReason.NOT_UTF8, f"payload is not UTF-8 (byte {exc.start})"
        ) from None
    if "\x00" in text or "\\u0000" in text:
        # PostgreSQL cannot store NUL in text, and no field of ours needs one
        raise ProtocolError(DeadLetterReason.SCHEMA, "payload contains a NUL character")
    try:
        body = json.loads(text, parse_constant=_refuse_constant)
    except _NotJson as exc:
        raise ProtocolError(DeadLetterReason.BAD_JSON, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            DeadLetterReason.BAD_JSON, f"payload is not JSON (line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise ProtocolError(DeadLetterReason.BAD_JSON, "payload is nested too deeply") from None
    if not isinstance(body, dict):
        raise ProtocolError(DeadLetterReason.SCHEMA, "payload must be a JSON object")
    return body


def parse_message(kind: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> DeviceMessage:
    """Parse the body of a `{kind}` message. Raises ProtocolError."""
    message_type = MESSAGE_TYPES.get(kind)
    if message_type is None:
        raise ProtocolError(
            DeadLetterReason.UNKNOWN_KIND,
            f"unknown message kind {kind[:32]!r}; expected one of {', '.join(MESSAGE_TYPES)}",
        )
    body = decode_payload(payload, max_bytes)
    try:
        return message_type.model_validate(body)  # type: ignore[return-value]
    except ValidationError as exc:
        raise ProtocolError(DeadLetterReason.SCHEMA, describe_validation_error(exc)) from None


def encode(message: _Message) -> bytes:
    """What a device publishes (used by the simulator and tests)."""
    return message.model_dump_json(exclude_none=True).encode("utf-8")
