"""Scenario 3: the database is unavailable for a while (30 s by default,
CPM_RELIABILITY_DB_OUTAGE_S) while devices publish.

The shared PostgreSQL server is not stopped (other tests use it): the test database
refuses connections (`ALTER DATABASE ... ALLOW_CONNECTIONS false`) and its sessions are
terminated. SQLite: another connection holds `BEGIN EXCLUSIVE` (the file locked by
another writer). Ingest must hold what it received unacknowledged, back off, say so in
its log, and resume; nothing lost, nothing doubled, no crash. The API's `/readyz` is
asked while it lasts.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from services.core.demo import DemoCommunity
from services.ingest.service import IngestService
from tests.support import wait_until
from tests.support.databases import pg_admin as _pg_admin
from tests.support.env import MQTT_URL
from tests.support.mqtt import Device
from tests.support.reliability import (
    as_messages,
    db_name,
    env_float,
    record,
    settle,
    stored_count,
    tally,
    traffic,
)

OUTAGE_S = env_float("CPM_RELIABILITY_DB_OUTAGE_S", 30)
BEFORE, DURING = 600, 1200


@contextmanager
def database_outage(database_url: str) -> Iterator[None]:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        holder = sqlite3.connect(str(url.database), isolation_level=None, timeout=10)
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the file
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    admin = _pg_admin()
    name = url.database
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def readiness(client: TestClient) -> int:
    return client.get("/readyz").status_code


@pytest.mark.slow
def test_database_outage_holds_messages_unacknowledged_then_stores_each_once(
    seeded_engine: Engine,
    database_url: str,
    small_community: DemoCommunity,
    topic_prefix: str,
    make_settings: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from services.api.main import create_app

    caplog.set_level(logging.INFO)
    settings = make_settings(mqtt_url=MQTT_URL, ingest_session_expiry_s=600, ingest_batch_size=100)
    sent = traffic(small_community, topic_prefix, BEFORE + DURING)
    service = IngestService(settings)
    service.start()
    device = Device(MQTT_URL)
    api = TestClient(create_app(settings))
    during: dict[str, Any] = {}
    try:
        device.stream(as_messages(sent[:BEFORE]))
        wait_until(lambda: stored_count(seeded_engine) == BEFORE, timeout=60)
        assert readiness(api) == 200
        with database_outage(database_url):
            began = time.monotonic()
            sender = threading.Thread(
                target=device.stream, args=(as_messages(sent[BEFORE:]),), kwargs={"pace_every": 50}
            )
            sender.start()
            wait_until(lambda: service.stats.received > BEFORE + 100, timeout=OUTAGE_S)
            time.sleep(min(2.0, OUTAGE_S / 4))  # a commit that was under way when it began
            acked = service.stats.acked
            during["readyz"] = readiness(api)
            remaining = OUTAGE_S - (time.monotonic() - began)
            time.sleep(max(0.0, remaining))  # the outage itself
            during["acked_growth"] = service.stats.acked - acked
            during["received"] = service.stats.received
            during["retries"] = service.stats.db_retries
            sender.join(60)
        ended = time.monotonic()
        settle(seeded_engine, BEFORE + DURING, quiet_s=40)
        recovery = time.monotonic() - ended
        during["writer_alive"] = service.running
        during["readyz_after"] = readiness(api)
    finally:
        device.close()
        service.stop()
    result = tally(seeded_engine, sent)
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("services.ingest")]
    unavailable = [m for m in logged if "database unavailable" in m]
    record(
        scenario="3",
        database=db_name(database_url),
        sent=result.sent,
        stored=result.stored,
        lost=result.lost,
        doubled=result.doubled,
        recovery_s=recovery,
        notes=f"outage {OUTAGE_S:.0f} s; acks during it: {during['acked_growth']}; "
        f"ingest retries: {during['retries']}; /readyz during: {during['readyz']}, after: "
        f"{during['readyz_after']}; log: "
        + (f"'{unavailable[0][:90]}'" if unavailable else "NO 'database unavailable' line")
        + "; recovery = outage end to all stored",
    )
    assert result.lost == 0, result.missing
    assert result.doubled == 0
    assert during["writer_alive"], "the writer thread died"
    assert during["received"] > BEFORE + 100, "nothing arrived during the outage"
    assert during["acked_growth"] == 0, "ingest acknowledged messages it could not commit"
    assert unavailable, "no log line said the database was unavailable"
    assert any("database available again" in m for m in logged)
    assert during["readyz_after"] == 200
    if db_name(database_url) == "postgres":
        assert during["readyz"] == 503
