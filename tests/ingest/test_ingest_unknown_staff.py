"""Duty from an unknown staff id: stored with a flag, never counted as staffing."""

from __future__ import annotations

from sqlalchemy import Engine, text

from services.ingest.service import IngestService
from tests.support import Publisher, wait_until
from tests.support.ingest import stamp, stored, topic


def test_unknown_staff_duty_is_flagged_and_not_on_duty(
    ingest: IngestService, device: Publisher, seeded_engine: Engine
) -> None:
    known = {"msg_id": "d1", "ts": stamp(), "staff_id": "st-001-1", "action": "on"}
    stranger = {"msg_id": "d2", "ts": stamp(), "staff_id": "nobody-42", "action": "on"}
    device.publish(topic(ingest, "cp-001", "duty"), known)
    device.publish(topic(ingest, "cp-001", "duty"), stranger)
    wait_until(lambda: ingest.stats.received >= 2)
    assert ingest.wait_idle()
    assert stored(seeded_engine, "duty_event") == 2
    with seeded_engine.connect() as conn:
        rows = conn.execute(text("SELECT staff_id, unknown_staff FROM duty_event")).all()
        flags = {row[0]: row[1] for row in rows}
        presence = conn.execute(text("SELECT staff_id FROM staff_presence")).scalars().all()
    assert {k: bool(v) for k, v in flags.items()} == {"st-001-1": False, "nobody-42": True}
    assert presence == ["st-001-1"]
