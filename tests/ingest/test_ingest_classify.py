"""What ingest decides about each passage: registration, quarantine, screening, clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session, select

from services.core.demo import DemoCommunity, DemoPerson, make_resident_id
from services.core.models import Passage
from services.ingest.service import IngestService
from tests.support import Publisher, wait_until
from tests.support.ingest import stamp, topic


def first(community: DemoCommunity, **wanted: Any) -> DemoPerson:
    return next(p for p in community.people if all(getattr(p, k) == v for k, v in wanted.items()))


def passages(engine: Engine) -> dict[str, Passage]:
    with Session(engine) as session:
        return {row.msg_id: row for row in session.exec(select(Passage))}


def test_registration_status_of_each_kind_of_passage(
    ingest: IngestService, device: Publisher, seeded_engine: Engine, small_community: DemoCommunity
) -> None:
    import random

    valid = first(small_community, pass_state="valid", quarantined=False)
    other = small_community.people[-1]
    expired = first(small_community, pass_state="expired")
    revoked = first(small_community, pass_state="revoked")
    quarantined = first(small_community, quarantined=True)
    stranger = make_resident_id(random.Random(99))
    vehicle = small_community.vehicles[0]
    cases = {
        "registered": {"id_number": valid.id_number, "qr_pass": valid.pass_code},
        "unknown_person": {"id_number": stranger, "qr_pass": valid.pass_code},
        "no_pass": {"id_number": valid.id_number},
        "unknown_pass": {"id_number": valid.id_number, "qr_pass": "QR-FORGED"},
        "pass_mismatch": {"id_number": valid.id_number, "qr_pass": other.pass_code},
        "expired_pass": {"id_number": expired.id_number, "qr_pass": expired.pass_code},
        "revoked_pass": {"id_number": revoked.id_number, "qr_pass": revoked.pass_code},
        "invalid_id": {
            "id_number": valid.id_number[:-1] + "0"
            if valid.id_number[-1] != "0"
            else valid.id_number[:-1] + "1",
            "qr_pass": valid.pass_code,
        },
        "missing_id": {"qr_pass": valid.pass_code},
        "quarantined": {"id_number": quarantined.id_number, "qr_pass": quarantined.pass_code},
    }
    for msg_id, fields in cases.items():
        entry = {
            "msg_id": msg_id,
            "ts": stamp(),
            "direction": "out",
            "kind": "person",
            "temp_c": 36.5,
            **fields,
        }
        device.publish(topic(ingest, "cp-010", "entry"), entry)
    vehicle_base = {"ts": stamp(), "direction": "in", "kind": "vehicle"}
    device.publish(
        topic(ingest, "cp-005", "entry"),
        {**vehicle_base, "msg_id": "car", "plate": vehicle.plate[:2] + " " + vehicle.plate[2:]},
    )
    device.publish(
        topic(ingest, "cp-005", "entry"), {**vehicle_base, "msg_id": "van", "plate": "粤Z0000"}
    )
    device.publish(topic(ingest, "cp-005", "entry"), {**vehicle_base, "msg_id": "bike"})
    rows = wait_until(lambda: (rows := passages(seeded_engine)) and len(rows) == 13 and rows)
    status = {msg_id: row.registration for msg_id, row in rows.items()}
    assert status == {
        **{name: name for name in cases if name not in ("missing_id", "quarantined")},
        "missing_id": "invalid_id",
        "quarantined": "registered",
        "car": "registered",
        "van": "unregistered_vehicle",
        "bike": "unregistered_vehicle",
    }
    assert {m for m, row in rows.items() if row.quarantined} == {"quarantined"}
    assert rows["registered"].person_id is not None
    assert rows["registered"].id_masked.startswith(valid.id_number[:4])
    assert rows["car"].plate == vehicle.plate and rows["car"].vehicle_id is not None


def test_registry_changes_apply_to_the_next_message(
    ingest: IngestService, device: Publisher, seeded_engine: Engine, small_community: DemoCommunity
) -> None:
    person = first(small_community, pass_state="valid", quarantined=False)
    entry = {
        "ts": stamp(),
        "direction": "in",
        "kind": "person",
        "id_number": person.id_number,
        "qr_pass": person.pass_code,
    }
    device.publish(topic(ingest, "cp-011", "entry"), {**entry, "msg_id": "before"})
    wait_until(lambda: "before" in passages(seeded_engine))
    with seeded_engine.begin() as conn:  # as the API would, from another process
        conn.execute(
            text("UPDATE pass SET revoked_at = :now WHERE code = :code"),
            {"now": datetime.now(UTC) - timedelta(seconds=1), "code": person.pass_code},
        )
    device.publish(topic(ingest, "cp-011", "entry"), {**entry, "msg_id": "after", "ts": stamp()})
    rows = wait_until(lambda: (rows := passages(seeded_engine)) and "after" in rows and rows)
    assert rows["before"].registration == "registered"
    assert rows["after"].registration == "revoked_pass"


def test_screening_links_readings_to_passages(
    ingest: IngestService, device: Publisher, seeded_engine: Engine, small_community: DemoCommunity
) -> None:
    person = small_community.people[3]
    ident = {"kind": "person", "id_number": person.id_number, "qr_pass": person.pass_code}
    cp = "cp-003"  # a handheld-thermometer gate
    # a reading naming an entry that arrives later
    device.publish(
        topic(ingest, cp, "reading"),
        {
            "msg_id": "r-early",
            "ts": stamp(),
            "temp_c": 36.8,
            "direction": "in",
            "entry_msg_id": "e-late",
        },
    )
    device.publish(
        topic(ingest, cp, "entry"), {"msg_id": "e-late", "ts": stamp(), "direction": "in", **ident}
    )
    # an entry, then an unnamed reading 10 s later (device time) in the same direction
    device.publish(
        topic(ingest, cp, "entry"),
        {"msg_id": "e-window", "ts": stamp(-100), "direction": "out", **ident},
    )
    device.publish(
        topic(ingest, cp, "reading"),
        {"msg_id": "r-window", "ts": stamp(-90), "temp_c": 36.2, "direction": "out"},
    )
    # too far apart, wrong direction, and an implausible one: none of them screen
    device.publish(
        topic(ingest, cp, "entry"),
        {"msg_id": "e-alone", "ts": stamp(-300), "direction": "in", **ident},
    )
    device.publish(
        topic(ingest, cp, "reading"),
        {"msg_id": "r-far", "ts": stamp(-240), "temp_c": 36.5, "direction": "in"},
    )
    device.publish(
        topic(ingest, cp, "reading"),
        {"msg_id": "r-wrong-way", "ts": stamp(-300), "temp_c": 36.5, "direction": "out"},
    )
    device.publish(
        topic(ingest, cp, "reading"),
        {"msg_id": "r-broken", "ts": stamp(-301), "temp_c": 22.0, "direction": "in"},
    )
    device.publish(
        topic(ingest, cp, "entry"),
        {"msg_id": "e-cold", "ts": stamp(), "direction": "in", "temp_c": 12.0, **ident},
    )
    rows = wait_until(lambda: (rows := passages(seeded_engine)) and len(rows) == 4 and rows)
    ingest.wait_idle()
    rows = passages(seeded_engine)
    assert (rows["e-late"].screened, rows["e-late"].screening) == (True, "linked_reading")
    assert (rows["e-window"].screened, rows["e-window"].screening) == (True, "time_window")
    assert not rows["e-alone"].screened
    assert not rows["e-cold"].screened
    with seeded_engine.connect() as conn:
        readings = {r.msg_id: r for r in conn.execute(text("SELECT * FROM reading"))}
        rollup = conn.execute(
            text(
                "SELECT sum(screened_persons), sum(passages), sum(implausible_readings) "
                "FROM coverage_rollup"
            )
        ).one()
    assert readings["r-early"].passage_id == rows["e-late"].id
    assert rows["e-window"].reading_id == readings["r-window"].id
    assert readings["r-far"].passage_id is None
    assert readings["r-broken"].implausible and readings["e-cold"].implausible
    assert tuple(rollup) == (2, 4, 2)


def test_a_wrong_device_clock_loses_nothing(
    ingest: IngestService, device: Publisher, seeded_engine: Engine
) -> None:
    ahead = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    device.publish(topic(ingest, "cp-020", "heartbeat"), {"ts": ahead})
    device.publish(
        topic(ingest, "cp-020", "entry"),
        {
            "msg_id": "future",
            "ts": ahead,
            "direction": "in",
            "kind": "vehicle",
            "plate": "粤B00000",
        },
    )
    device.publish(
        topic(ingest, "cp-020", "entry"),
        {
            "msg_id": "backlog",
            "ts": stamp(-3600),
            "direction": "in",
            "kind": "vehicle",
            "plate": "粤B00000",
        },
    )
    rows = wait_until(lambda: (rows := passages(seeded_engine)) and len(rows) == 2 and rows)
    assert rows["future"].clock_adjusted
    assert abs((rows["future"].ts - datetime.now(UTC)).total_seconds()) < 60
    assert rows["future"].device_ts.isoformat() == ahead
    assert not rows["backlog"].clock_adjusted  # a replayed hour keeps its own time
    with seeded_engine.connect() as conn:
        skew = conn.execute(
            text("SELECT clock_skew_s FROM checkpoint_state WHERE checkpoint_id = 'cp-020'")
        ).scalar_one()
    assert 3 * 3600 - 60 < skew < 3 * 3600 + 60
