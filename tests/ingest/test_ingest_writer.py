"""Both places ingest can write from: a child process (the default) and its own thread."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.core.db import utcnow
from services.core.demo import DemoCommunity
from services.ingest.parse import Inbound
from services.ingest.service import IngestService
from services.ingest.writer import ProcessWriter, WriteFailed
from tests.support import Publisher, wait_until
from tests.support.ingest import stamp, stored, topic


@pytest.fixture(params=["process", "thread"])
def ingest_with(
    request: pytest.FixtureRequest, seeded_engine: Engine, make_settings: Any
) -> Iterator[IngestService]:
    settings = make_settings(ingest_session_expiry_s=60, ingest_writer=request.param)
    service = IngestService(settings, seeded_engine)
    service.start()
    yield service
    service.stop()


def test_either_writer_stores_classifies_and_dead_letters(
    ingest_with: IngestService,
    device: Publisher,
    seeded_engine: Engine,
    small_community: DemoCommunity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services")
    person = small_community.people[2]
    entry = {
        "msg_id": "e1",
        "ts": stamp(),
        "direction": "in",
        "kind": "person",
        "id_number": person.id_number,
        "qr_pass": person.pass_code,
    }
    device.publish(topic(ingest_with, "cp-004", "entry"), entry)
    device.publish(topic(ingest_with, "cp-004", "entry"), entry)  # a redelivery
    device.publish(
        topic(ingest_with, "cp-004", "reading"),
        {"msg_id": "r1", "ts": stamp(1), "temp_c": 36.5, "direction": "in"},
    )
    device.publish(topic(ingest_with, "cp-004", "reading"), b"{not json")
    wait_until(lambda: stored(seeded_engine, "dead_letter") == 1)
    wait_until(lambda: stored(seeded_engine, "reading") == 1)
    assert ingest_with.wait_idle()
    with seeded_engine.connect() as conn:
        passage = conn.execute(text("SELECT registration, screened FROM passage")).one()
    assert tuple(passage) == ("registered", True)  # the reading 1 s later screened it
    assert ingest_with.stats.duplicates == 1 and ingest_with.stats.dead_letters == 1
    # what the writer logs, in whichever process, arrives in this process's logging
    wait_until(lambda: "dead-lettered 1 message(s)" in caplog.text, timeout=5)


def test_a_writer_that_cannot_reach_the_database_fails_transiently(make_settings: Any) -> None:
    # a port nothing listens on: the database is "down", which is worth retrying
    settings = make_settings(database_url="postgresql+psycopg://postgres@127.0.0.1:9/none")
    writer = ProcessWriter(settings)
    try:
        writer.start()
        inbound = Inbound(f"{settings.topic_prefix}/cp/cp-001/heartbeat", b"{}", utcnow())
        with pytest.raises(WriteFailed) as failure:
            writer.process([inbound])
        assert failure.value.transient
        assert "OperationalError" in str(failure.value)
        assert failure.value.cause == "OperationalError"  # what the retry log names
        assert writer.pid is not None and writer.restarts == 0  # it reports, it does not die
    finally:
        writer.close()


def test_whole_and_decimal_temperatures_in_one_batch(
    ingest: IngestService, device: Publisher, seeded_engine: Engine
) -> None:
    # PostgreSQL gets each column as one binary array, which holds a single type
    temps = [37, 36.6, 38, 35.95]
    for n, temp in enumerate(temps):
        device.publish(
            topic(ingest, "cp-005", "reading"),
            {"msg_id": f"r{n}", "ts": stamp(n), "temp_c": temp, "direction": "out"},
        )
    wait_until(lambda: stored(seeded_engine, "reading") == len(temps))
    with seeded_engine.connect() as conn:
        stored_temps = conn.execute(text("SELECT temp_c FROM reading ORDER BY msg_id")).scalars()
        assert [float(t) for t in stored_temps] == [float(t) for t in temps]
    assert stored(seeded_engine, "dead_letter") == 0


def test_a_bug_in_the_writer_process_is_reported_with_its_traceback(
    seeded_engine: Engine, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="services")
    settings = make_settings()
    writer = ProcessWriter(settings)
    try:
        # no payload at all: not bad data a device could send, a bug in the caller
        broken = Inbound(f"{settings.topic_prefix}/cp/cp-001/heartbeat", None, utcnow())  # type: ignore[arg-type]
        with pytest.raises(WriteFailed) as failure:
            writer.process([broken])
        assert not failure.value.transient and failure.value.cause == "TypeError"
    finally:
        writer.close()  # the writer's log records are all forwarded by then
    # the writer's own log line, traceback included, through this process's logging
    logged = [r for r in caplog.records if "unexpected error storing" in r.getMessage()]
    assert len(logged) == 1 and "Traceback" in logged[0].getMessage(), logged
    assert "TypeError" in logged[0].getMessage()
