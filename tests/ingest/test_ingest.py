"""Ingest through the real broker into both databases."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.core.demo import DemoCommunity
from services.core.identity import mask_tail
from services.ingest.service import IngestService
from tests.support import Publisher, count, wait_until
from tests.support.ingest import stamp, stored, topic

NOW = datetime.now(UTC)


def test_every_kind_is_stored_once_and_duplicates_collapse(
    ingest: IngestService, device: Publisher, seeded_engine: Engine, small_community: DemoCommunity
) -> None:
    person = small_community.people[0]
    entry = {
        "msg_id": "e1",
        "ts": stamp(),
        "direction": "in",
        "kind": "person",
        "id_number": person.id_number,
        "qr_pass": person.pass_code,
        "temp_c": 36.4,
    }
    reading = {"msg_id": "r1", "ts": stamp(), "temp_c": 36.6, "direction": "out"}
    duty = {"msg_id": "d1", "ts": stamp(), "staff_id": "st-001-1", "action": "on"}
    for _ in range(2):  # a QoS-1 redelivery looks exactly like this
        device.publish(topic(ingest, "cp-001", "entry"), entry)
        device.publish(topic(ingest, "cp-001", "reading"), reading)
        device.publish(topic(ingest, "cp-001", "duty"), duty)
        device.publish(
            topic(ingest, "cp-001", "status"), {"state": "online", "ts": NOW.isoformat()}
        )
    device.publish(
        topic(ingest, "cp-001", "heartbeat"), {"ts": stamp(), "uptime_s": 5, "backlog": 0}
    )
    wait_until(lambda: ingest.stats.received >= 9)
    assert ingest.wait_idle()
    assert stored(seeded_engine, "passage") == 1
    assert stored(seeded_engine, "reading") == 2  # the handheld's and the terminal's
    assert stored(seeded_engine, "duty_event") == 1
    assert stored(seeded_engine, "device_status_event") == 1
    assert stored(seeded_engine, "dead_letter") == 0
    assert ingest.stats.duplicates == 4
    with seeded_engine.connect() as conn:
        state = conn.execute(
            text("SELECT * FROM checkpoint_state WHERE checkpoint_id = 'cp-001'")
        ).one()
        assert state.device_state == "online"
        assert state.uptime_s == 5 and state.backlog == 0
        assert state.last_heartbeat_at is not None and state.last_passage_at is not None
        assert abs(state.clock_skew_s) < 5
        presence = conn.execute(text("SELECT * FROM staff_presence")).one()
        assert (presence.staff_id, bool(presence.on_duty)) == ("st-001-1", True)
        rollup = conn.execute(text("SELECT * FROM coverage_rollup")).one()
        assert (rollup.passages, rollup.persons_in, rollup.screened_persons) == (1, 1, 1)
        assert (rollup.registered, rollup.readings, rollup.fevers) == (1, 2, 0)


BAD_INPUTS = [
    ("entry", b"{not json", "bad_json"),
    ("entry", b"\xff\xfe\x00", "not_utf8"),
    ("entry", b'{"msg_id": "x", "ts": "' + b"9" * 9000 + b'"}', "oversize"),
    ("reading", b'{"msg_id": "x", "ts": "2026-01-01T00:00:00Z", "direction": "in"}', "schema"),
    ("reading", b'{"msg_id": 7, "ts": "yesterday", "temp_c": "hot", "direction": "up"}', "schema"),
    ("reading", b"[1, 2]", "schema"),
    ("reading", b'{"msg_id": "a\\u0000", "ts": "2026-01-01T00:00:00Z"}', "schema"),
    ("selfie", b'{"msg_id": "x"}', "unknown_kind"),
    # Python's json reads these, JSON does not (RFC 8259)
    ("reading", b'{"msg_id": "n", "ts": "2026-01-01T00:00:00Z", "temp_c": NaN}', "bad_json"),
    ("reading", b'{"msg_id": "i", "ts": "2026-01-01T00:00:00Z", "temp_c": -Infinity}', "bad_json"),
]


def test_each_bad_input_class_is_dead_lettered_with_its_reason(
    ingest: IngestService, device: Publisher, seeded_engine: Engine
) -> None:
    for kind, payload, _reason in BAD_INPUTS:
        device.publish(topic(ingest, "cp-002", kind), payload)
    good = {"msg_id": "ok", "ts": stamp(), "temp_c": 36.5, "direction": "in"}
    device.publish(topic(ingest, "cp-999", "reading"), good)  # not in the registry
    device.publish(f"{ingest.settings.topic_prefix}/cp/cp-002/reading/extra", good)
    device.publish(topic(ingest, "cp-002", "reading"), good)  # still fine after all that
    wait_until(lambda: stored(seeded_engine, "dead_letter") == len(BAD_INPUTS) + 2)
    wait_until(lambda: stored(seeded_engine, "reading") == 1)
    with seeded_engine.connect() as conn:
        rows = conn.execute(text("SELECT reason, detail, topic FROM dead_letter ORDER BY id")).all()
    reasons = [row.reason for row in rows]
    assert reasons == [r for _, _, r in BAD_INPUTS] + ["unknown_checkpoint", "bad_topic"]
    details = [row.detail for row in rows]
    assert "temp_c: Field required" in details[3]  # the message names the field
    assert "ts: is not an RFC 3339 timestamp" in details[4]
    assert "NUL" in details[6]
    assert "unknown message kind" in details[7]


def test_dead_letters_and_logs_never_hold_a_raw_id(
    ingest: IngestService,
    device: Publisher,
    seeded_engine: Engine,
    small_community: DemoCommunity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    raw = small_community.people[1].id_number
    device.publish(topic(ingest, "cp-003", "entry"), f'{{"id_number": "{raw}", "msg_id": ')
    device.publish(
        topic(ingest, "cp-003", "entry"),
        {"msg_id": "m", "ts": "bad", "kind": "person", "id_number": raw},
    )
    device.publish(
        topic(ingest, "cp-003", "entry"),
        {
            "msg_id": "ok",
            "ts": stamp(),
            "kind": "person",
            "direction": "in",
            "id_number": raw,
            "qr_pass": "nope",
        },
    )
    wait_until(lambda: stored(seeded_engine, "dead_letter") == 2)
    wait_until(lambda: stored(seeded_engine, "passage") == 1)
    assert raw not in caplog.text
    assert_no_raw_ids(seeded_engine, [raw])
    with seeded_engine.connect() as conn:
        payloads = conn.execute(text("SELECT payload FROM dead_letter")).scalars().all()
    assert all(mask_tail(raw) in payload for payload in payloads)  # the last four only


def assert_no_raw_ids(engine: Engine, raw_ids: list[str]) -> None:
    """Search every text column of every table for the raw numbers."""
    with engine.connect() as conn:
        for table in ("passage", "reading", "dead_letter", "person", "duty_event"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                blob = json.dumps([str(v) for v in row])
                for raw in raw_ids:
                    assert raw not in blob, f"raw ID found in {table}"


def test_a_callback_exception_is_logged_and_ingest_goes_on_hearing(
    seeded_engine: Engine,
    make_settings: Any,
    mqtt_url: str,
    device: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """paho re-raises what a callback raises, which ends its network thread: the process
    would stay up, deaf. Here the receipt clock fails inside on_message once: the error
    is logged with its traceback, the next message is stored, and `running` reports the
    network thread, not only the commit thread."""
    calls = 0

    def clock() -> datetime:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("receipt clock failed")
        return datetime.now(UTC)

    service = IngestService(make_settings(ingest_session_expiry_s=60), seeded_engine, clock=clock)
    service.start()
    try:
        duty = {"ts": stamp(), "staff_id": "st-001-1", "action": "on"}
        with caplog.at_level(logging.ERROR):
            device.publish(topic(service, "cp-001", "duty"), {**duty, "msg_id": "d1"})
            failure = wait_until(
                lambda: (
                    [r for r in caplog.records if "receipt clock failed" in r.getMessage()]
                    or [r for r in caplog.records if r.exc_info and "clock" in str(r.exc_info[1])]
                )
            )
        assert failure[0].exc_info is not None  # the traceback, not only the message
        device.publish(topic(service, "cp-001", "duty"), {**duty, "msg_id": "d2"})
        wait_until(lambda: stored(seeded_engine, "duty_event") == 1)
        assert count(seeded_engine, "SELECT count(*) FROM duty_event WHERE msg_id = 'd2'") == 1
        assert service.running
        service.client.loop_stop()  # the network thread ends: ingest is deaf now
        assert not service.running
    finally:
        service.stop()
