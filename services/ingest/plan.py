"""From parsed messages (parse.py) to the rows they become.

A table maps each topic kind to a small handler that turns the message into rows of a
`BatchPlan`. Handlers are pure: the registry facts they need arrive in a `RowContext`;
`store.py` does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.core.enums import PassageKind, ReadingSource, Screening
from services.core.identity import (
    contains_id,
    is_valid_id,
    mask_id,
    normalize_id,
    pseudonymise_ids,
    redact,
)
from services.core.models.registry import normalize_plate
from services.core.protocol import (
    DutyMessage,
    EntryMessage,
    HeartbeatMessage,
    ReadingMessage,
    StatusMessage,
)
from services.core.settings import Settings
from services.ingest.parse import Accepted
from services.ingest.rules import (
    PassRecord,
    QuarantineWindow,
    classify_person,
    classify_vehicle,
    flag_temperature,
    is_quarantined,
    trusted_time,
)


# --- what handlers may know ------------------------------------------------------------
@dataclass(slots=True)
class RegistryView:
    """The registry facts one batch needs, looked up in one go."""

    # normalised ID number -> its HMAC, computed once per batch; kept in memory only
    id_hashes: dict[str, str] = field(default_factory=dict)
    person_ids: dict[str, int] = field(default_factory=dict)  # id_hash -> person id
    passes: dict[str, PassRecord] = field(default_factory=dict)  # code -> pass
    vehicles: dict[str, tuple[int, bool]] = field(default_factory=dict)  # plate -> id, active
    quarantines: dict[int, list[QuarantineWindow]] = field(default_factory=dict)
    fever_thresholds: dict[str, float] = field(default_factory=dict)  # checkpoint -> °C
    # the staff ids this batch's duty messages name that exist; None: not looked up
    staff_ids: set[str] | None = None


@dataclass(slots=True)
class RowContext:
    settings: Settings
    registry: RegistryView


@dataclass(slots=True)
class BatchPlan:
    """Rows to write for one batch, keyed (checkpoint_id, msg_id) where they have one."""

    passages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    entry_readings: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    readings: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    duty_events: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    status_events: dict[tuple[str, str, datetime], dict[str, Any]] = field(default_factory=dict)
    heartbeats: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest per checkpoint
    skews: dict[str, tuple[float, datetime]] = field(default_factory=dict)
    seen: dict[str, datetime] = field(default_factory=dict)  # checkpoint -> last received
    duplicates: int = 0

    def put(self, rows: dict[Any, dict[str, Any]], key: Any, row: dict[str, Any]) -> bool:
        if key in rows:
            self.duplicates += 1
            return False
        rows[key] = row
        return True


def _event_times(
    plan: BatchPlan, item: Accepted, ctx: RowContext, device_ts: datetime
) -> dict[str, Any]:
    """The timestamps of an event row; an overruled device clock is noted as skew."""
    received = item.inbound.received_at
    if device_ts.tzinfo is not UTC:  # one tzinfo object: comparisons skip utcoffset()
        device_ts = device_ts.astimezone(UTC)
    ts, adjusted = trusted_time(
        device_ts,
        received,
        future_skew_s=ctx.settings.future_skew_s,
        max_age_h=ctx.settings.max_event_age_h,
    )
    if adjusted:
        _note_skew(plan, item.checkpoint_id, device_ts, received)
    return {"ts": ts, "device_ts": device_ts, "received_at": received, "clock_adjusted": adjusted}


def _note_skew(
    plan: BatchPlan, checkpoint_id: str, device_ts: datetime, received: datetime
) -> None:
    plan.skews[checkpoint_id] = ((device_ts - received).total_seconds(), received)


def _reading_row(
    ctx: RowContext, checkpoint_id: str, temp_c: float, times: dict[str, Any]
) -> dict[str, Any]:
    settings = ctx.settings
    fever, implausible = flag_temperature(
        temp_c,
        fever_threshold_c=ctx.registry.fever_thresholds.get(
            checkpoint_id, settings.fever_threshold_c
        ),
        plausible_min_c=settings.plausible_min_c,
        plausible_max_c=settings.plausible_max_c,
    )
    return {
        "checkpoint_id": checkpoint_id,
        "temp_c": temp_c,
        "fever": fever,
        "implausible": implausible,
        "passage_id": None,
        **times,
    }


def free_text(value: str | None) -> str | None:
    """A device's free-text field (QR code, plate, operator) as stored: anything shaped
    like an ID number masked (anybody can hold up a QR code holding one)."""
    return redact(value) if value and contains_id(value) else value


def add_entry(plan: BatchPlan, item: Accepted, ctx: RowContext) -> None:
    entry = item.message
    assert isinstance(entry, EntryMessage)
    times = _event_times(plan, item, ctx, entry.ts)
    row: dict[str, Any] = {
        "checkpoint_id": item.checkpoint_id,
        "msg_id": entry.msg_id,
        **times,
        "direction": entry.direction.value,
        "kind": entry.kind.value,
        "id_type": None,
        "id_hash": None,
        "id_masked": None,
        "person_id": None,
        "qr_pass": free_text(entry.qr_pass),
        "pass_id": None,
        "plate": None,
        "vehicle_id": None,
        "quarantined": False,
        "temp_c": entry.temp_c,
        "screened": False,
        "screening": None,
        "reading_id": None,
    }
    registry = ctx.registry
    if entry.kind is PassageKind.VEHICLE:
        plate = normalize_plate(entry.plate) if entry.plate else None
        vehicle = registry.vehicles.get(plate) if plate else None
        row["plate"] = free_text(plate)
        row["vehicle_id"] = vehicle[0] if vehicle else None
        row["registration"] = classify_vehicle(vehicle_active=vehicle[1] if vehicle else None)
    else:
        id_number = normalize_id(entry.id_number) if entry.id_number else ""
        # load_registry hashed every ID number of the batch
        id_hash = registry.id_hashes[id_number] if id_number else None
        person_id = registry.person_ids.get(id_hash) if id_hash else None
        pass_record = registry.passes.get(entry.qr_pass) if entry.qr_pass else None
        row.update(
            id_type=entry.id_type,
            id_hash=id_hash,
            id_masked=mask_id(id_number) if id_number else None,
            person_id=person_id,
            pass_id=pass_record.id if pass_record else None,
            # a registered pass code is the registry's; anything else is free text
            qr_pass=entry.qr_pass if pass_record else free_text(entry.qr_pass),
            quarantined=person_id is not None
            and is_quarantined(registry.quarantines.get(person_id, []), times["ts"]),
            registration=classify_person(
                id_valid=bool(id_number) and is_valid_id(id_number, entry.id_type),
                person_id=person_id,
                qr_pass=entry.qr_pass,
                pass_record=pass_record,
                ts=times["ts"],
            ),
        )
    key = (item.checkpoint_id, entry.msg_id)
    if not plan.put(plan.passages, key, row) or entry.temp_c is None:
        return
    reading = _reading_row(ctx, item.checkpoint_id, entry.temp_c, times)
    reading.update(
        msg_id=entry.msg_id,
        direction=row["direction"],
        operator=None,
        entry_msg_id=entry.msg_id,
        source=ReadingSource.ENTRY.value,
    )
    plan.entry_readings[key] = reading
    if entry.kind is PassageKind.PERSON and not reading["implausible"]:
        row.update(screened=True, screening=Screening.ENTRY_TEMP.value)


def add_reading(plan: BatchPlan, item: Accepted, ctx: RowContext) -> None:
    reading = item.message
    assert isinstance(reading, ReadingMessage)
    times = _event_times(plan, item, ctx, reading.ts)
    row = _reading_row(ctx, item.checkpoint_id, reading.temp_c, times)
    row.update(
        msg_id=reading.msg_id,
        direction=reading.direction.value,
        operator=free_text(reading.operator),
        entry_msg_id=reading.entry_msg_id,
        source=ReadingSource.THERMOMETER.value,
    )
    plan.put(plan.readings, (item.checkpoint_id, reading.msg_id), row)


def add_duty(plan: BatchPlan, item: Accepted, ctx: RowContext) -> None:
    duty = item.message
    assert isinstance(duty, DutyMessage)
    times = _event_times(plan, item, ctx, duty.ts)
    row = {
        "checkpoint_id": item.checkpoint_id,
        "msg_id": duty.msg_id,
        **times,
        "staff_id": duty.staff_id,
        "action": duty.action.value,
        # an unknown id is stored for operators to see, never counted as staffing
        "unknown_staff": ctx.registry.staff_ids is not None
        and duty.staff_id not in ctx.registry.staff_ids,
    }
    plan.put(plan.duty_events, (item.checkpoint_id, duty.msg_id), row)


def add_status(plan: BatchPlan, item: Accepted, ctx: RowContext) -> None:
    status = item.message
    assert isinstance(status, StatusMessage)
    received = item.inbound.received_at
    if status.state == "online":  # a will message's stamp is stale by design: skip it
        _note_skew(plan, item.checkpoint_id, status.ts, received)
    row = {
        "checkpoint_id": item.checkpoint_id,
        "ts": received,
        "device_ts": status.ts,
        "state": status.state,
        "firmware": status.firmware,
    }
    plan.put(plan.status_events, (item.checkpoint_id, status.state, status.ts), row)


def add_heartbeat(plan: BatchPlan, item: Accepted, ctx: RowContext) -> None:
    heartbeat = item.message
    assert isinstance(heartbeat, HeartbeatMessage)
    received = item.inbound.received_at
    _note_skew(plan, item.checkpoint_id, heartbeat.ts, received)
    plan.heartbeats[item.checkpoint_id] = {
        "last_heartbeat_at": received,
        "uptime_s": heartbeat.uptime_s,
        "backlog": heartbeat.backlog,
    }


Handler = Callable[[BatchPlan, Accepted, RowContext], None]

HANDLERS: dict[str, Handler] = {
    "entry": add_entry,
    "reading": add_reading,
    "duty": add_duty,
    "status": add_status,
    "heartbeat": add_heartbeat,
}


IDENTIFIER_FIELDS = ("msg_id", "entry_msg_id", "staff_id")


def without_raw_ids(item: Accepted, secret: str) -> None:
    """A device may hide an ID number in any field. Identifiers it chose (message ids,
    staff ids) get keyed tokens in its place, so they still match one another; free
    text (firmware) is masked like the QR code and the operator."""
    message = item.message
    fields = message.__dict__  # not getattr: pydantic's __getattr__ is slow to say no
    changes: dict[str, Any] = {}
    for name in IDENTIFIER_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and contains_id(value):
            changes[name] = pseudonymise_ids(secret, value)
    firmware = fields.get("firmware")
    if isinstance(firmware, str) and contains_id(firmware):
        changes["firmware"] = free_text(firmware)
    if changes:
        item.message = message.model_copy(update=changes)


def build_plan(accepted: list[Accepted], ctx: RowContext) -> BatchPlan:
    plan = BatchPlan()
    secret = ctx.settings.id_hash_secret.get_secret_value()
    for item in accepted:
        without_raw_ids(item, secret)
        HANDLERS[item.kind](plan, item, ctx)
        previous = plan.seen.get(item.checkpoint_id)
        received = item.inbound.received_at
        if previous is None or received > previous:
            plan.seen[item.checkpoint_id] = received
    return plan
