"""Writing one batch: registry look-ups, inserts that ignore redeliveries, screening
links, dead letters, and (state.py) roll-up counters and live checkpoint state, all in
the caller's transaction.

Everything is set-based (a handful of statements per batch, whatever its size), and
works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from services.core.enums import PassageKind, Registration
from services.core.identity import hash_id, normalize_id, redact
from services.core.models.registry import normalize_plate
from services.core.protocol import DutyMessage, EntryMessage
from services.core.tables import (
    checkpoint_t,
    dead_letter_t,
    dialect_insert,
    duty_t,
    pass_t,
    passage_t,
    person_t,
    quarantine_t,
    reading_t,
    site_t,
    staff_t,
    state_t,
    vehicle_t,
)
from services.ingest.bulk import insert_new, select_in, update_by_id, utc_stamp
from services.ingest.matching import MatchCost
from services.ingest.parse import Accepted, Rejected
from services.ingest.plan import BatchPlan, RegistryView
from services.ingest.rules import (
    OpenPassage,
    OpenReading,
    PassRecord,
    QuarantineWindow,
    hour_bucket,
)
from services.ingest.screening import link_screenings
from services.ingest.state import (
    add_rollups,
    insert_status_events,
    update_checkpoint_state,
    update_presence,
)

DEAD_LETTER_PAYLOAD_CHARS = 2048


@dataclass
class BatchOutcome:
    stored: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    dead_letters: int = 0
    screened: int = 0
    newest_ids: dict[str, int] = field(default_factory=dict)
    matching: MatchCost = field(default_factory=MatchCost)  # what screening read


# --- registry --------------------------------------------------------------------------
def load_checkpoints(conn: Connection, default_threshold: float) -> dict[str, float]:
    """Every checkpoint with its fever threshold (site override or the default)."""
    rows = conn.execute(
        select(checkpoint_t.c.id, site_t.c.fever_threshold_c).join(
            site_t, site_t.c.id == checkpoint_t.c.site_id
        )
    )
    thresholds = {row.id: row.fever_threshold_c or default_threshold for row in rows}
    known_states = set(conn.execute(select(state_t.c.checkpoint_id)).scalars())
    missing = [{"checkpoint_id": cp} for cp in thresholds if cp not in known_states]
    if missing:
        conn.execute(dialect_insert(conn, state_t).on_conflict_do_nothing(), missing)
    return thresholds


def load_registry(
    conn: Connection, accepted: Iterable[Accepted], secret: str, thresholds: dict[str, float]
) -> RegistryView:
    """The people, passes, vehicles and quarantines this batch's entries mention."""
    id_hashes: dict[str, str] = {}
    codes: set[str] = set()
    plates: set[str] = set()
    for item in accepted:
        entry = item.message
        if not isinstance(entry, EntryMessage):
            continue
        if entry.kind is PassageKind.VEHICLE:
            if entry.plate:
                plates.add(normalize_plate(entry.plate))
            continue
        id_number = normalize_id(entry.id_number) if entry.id_number else ""
        if id_number and id_number not in id_hashes:
            id_hashes[id_number] = hash_id(secret, id_number)
        if entry.qr_pass:
            codes.add(entry.qr_pass)
    view = RegistryView(id_hashes=id_hashes, fever_thresholds=thresholds)
    staff_named = {i.message.staff_id for i in accepted if isinstance(i.message, DutyMessage)}
    if staff_named:
        view.staff_ids = {row[0] for row in select_in(conn, staff_t, ["id"], "id", staff_named)}
    if id_hashes:
        rows = select_in(conn, person_t, ["id_hash", "id"], "id_hash", id_hashes.values())
        view.person_ids = dict(rows)
    if codes:
        columns = ["code", "id", "person_id", "valid_from", "valid_until", "revoked_at"]
        for code, id_, person_id, valid_from, valid_until, revoked in select_in(
            conn, pass_t, columns, "code", codes
        ):
            view.passes[code] = PassRecord(
                id_, person_id, utc_stamp(valid_from), utc_stamp(valid_until), utc_stamp(revoked)
            )
    person_ids = set(view.person_ids.values())
    if person_ids:
        columns = ["person_id", "starts_at", "ends_at", "lifted_at"]
        for person_id, starts, ends, lifted in select_in(
            conn, quarantine_t, columns, "person_id", person_ids
        ):
            window = QuarantineWindow(utc_stamp(starts), utc_stamp(ends), utc_stamp(lifted))
            view.quarantines.setdefault(person_id, []).append(window)
    if plates:
        columns = ["plate", "id", "active"]
        for plate, id_, active in select_in(conn, vehicle_t, columns, "plate", plates):
            view.vehicles[plate] = (id_, bool(active))
    return view


# --- dead letters ----------------------------------------------------------------------
def dead_letter_row(rejected: Rejected) -> dict[str, Any]:
    text = rejected.inbound.payload.decode("utf-8", errors="backslashreplace")
    text = text.replace("\x00", "\\x00")  # PostgreSQL text cannot hold NUL
    return {
        "received_at": rejected.inbound.received_at,
        "topic": redact(rejected.inbound.topic)[:512],
        "checkpoint_id": rejected.checkpoint_id,  # Rejected redacts its own fields
        "kind": rejected.kind,
        "reason": rejected.reason.value,
        "detail": rejected.detail[:500],
        # redact before truncating, so a cut cannot leave half an ID unmasked
        "payload": redact(text)[:DEAD_LETTER_PAYLOAD_CHARS],
        "payload_bytes": len(rejected.inbound.payload),
    }


def write_dead_letters(conn: Connection, rejected: Sequence[Rejected]) -> int:
    if rejected:
        conn.execute(dead_letter_t.insert(), [dead_letter_row(r) for r in rejected])
    return len(rejected)


# --- the batch -------------------------------------------------------------------------
def write_plan(conn: Connection, plan: BatchPlan, screening_window_s: float) -> BatchOutcome:
    """Write every row of the plan; count only what was new (redeliveries are skipped)."""
    outcome = BatchOutcome(duplicates=plan.duplicates)
    rollups: defaultdict[tuple[str, datetime], Counter[str]] = defaultdict(Counter)
    activity: defaultdict[str, dict[str, datetime]] = defaultdict(dict)

    def newest(table: str, ids: Iterable[int]) -> None:
        top = max(ids, default=None)
        if top is not None:
            outcome.newest_ids[table] = max(top, outcome.newest_ids.get(table, 0))

    def latest(checkpoint_id: str, column: str, ts: datetime) -> None:
        current = activity[checkpoint_id].get(column)
        if current is None or ts > current:
            activity[checkpoint_id][column] = ts

    # passages, then the readings their terminals measured
    passage_rows = list(plan.passages.values())
    inserted = insert_new(conn, passage_t, passage_rows, ("checkpoint_id", "msg_id"))
    passage_ids = {(cp, msg_id): id_ for id_, cp, msg_id in inserted}
    outcome.duplicates += len(passage_rows) - len(inserted)
    new_open_passages: list[OpenPassage] = []
    for key, passage_id in passage_ids.items():
        row = plan.passages[key]
        counts = rollups[(row["checkpoint_id"], hour_bucket(row["ts"]))]
        counts["passages"] += 1
        counts[f"{row['kind']}s_{row['direction']}"] += 1
        counts["registered"] += row["registration"] == Registration.REGISTERED
        counts["quarantine_passages"] += row["quarantined"]
        counts["screened_persons"] += row["screened"]
        latest(row["checkpoint_id"], "last_passage_at", row["ts"])
        if row["kind"] == PassageKind.PERSON and not row["screened"]:
            new_open_passages.append(
                OpenPassage(passage_id, key[0], row["direction"], row["ts"], key[1])
            )
        if key in plan.entry_readings:
            plan.entry_readings[key]["passage_id"] = passage_id if row["screened"] else None
    outcome.stored["passage"] = len(inserted)
    newest("passage", passage_ids.values())

    entry_readings = [row for key, row in plan.entry_readings.items() if key in passage_ids]
    reading_rows = entry_readings + list(plan.readings.values())
    inserted = insert_new(conn, reading_t, reading_rows, ("checkpoint_id", "msg_id"))
    outcome.duplicates += len(reading_rows) - len(inserted)
    by_key = {(r["checkpoint_id"], r["msg_id"]): r for r in reading_rows}
    new_open_readings: list[OpenReading] = []
    screened_by_entry: list[dict[str, Any]] = []
    for reading_id, checkpoint_id, msg_id in inserted:
        row = by_key[(checkpoint_id, msg_id)]
        counts = rollups[(row["checkpoint_id"], hour_bucket(row["ts"]))]
        counts["readings"] += 1
        counts["fevers"] += row["fever"]
        counts["implausible_readings"] += row["implausible"]
        latest(row["checkpoint_id"], "last_reading_at", row["ts"])
        if row["passage_id"] is not None:
            screened_by_entry.append({"id": row["passage_id"], "reading_id": reading_id})
        elif not row["implausible"] and row["source"] == "thermometer":
            new_open_readings.append(
                OpenReading(
                    reading_id, checkpoint_id, row["direction"], row["ts"], row["entry_msg_id"]
                )
            )
    outcome.stored["reading"] = len(inserted)
    newest("reading", (r[0] for r in inserted))
    update_by_id(conn, passage_t, screened_by_entry)

    matches, screened_passages = link_screenings(
        conn, new_open_passages, new_open_readings, screening_window_s, outcome.matching
    )
    for match in matches:
        passage = screened_passages[match.passage_id]
        rollups[(passage.checkpoint_id, hour_bucket(passage.ts))]["screened_persons"] += 1
    outcome.screened = len(matches)

    duty_rows = list(plan.duty_events.values())
    inserted = insert_new(conn, duty_t, duty_rows, ("checkpoint_id", "msg_id"))
    outcome.duplicates += len(duty_rows) - len(inserted)
    outcome.stored["duty_event"] = len(inserted)
    newest("duty_event", (r[0] for r in inserted))
    counted = [plan.duty_events[(cp, msg_id)] for _, cp, msg_id in inserted]
    update_presence(conn, [row for row in counted if not row.get("unknown_staff")])

    status_rows = list(plan.status_events.values())
    inserted = insert_status_events(conn, status_rows)
    outcome.duplicates += len(status_rows) - len(inserted)
    outcome.stored["device_status_event"] = len(inserted)
    newest("device_status_event", (r.id for r in inserted))
    new_states = {(r.checkpoint_id, r.device_ts, r.state) for r in inserted}
    device_states = {
        key[0]: row
        for key, row in plan.status_events.items()
        if (key[0], row["device_ts"], row["state"]) in new_states
    }

    add_rollups(conn, rollups)
    update_checkpoint_state(conn, plan, activity, device_states)
    return outcome
