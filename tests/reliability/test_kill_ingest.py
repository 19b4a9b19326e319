"""Scenario 1: the ingest process is killed (SIGKILL) several times mid-stream and
restarted each time; every message is stored exactly once."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import Engine

from services.core.demo import DemoCommunity
from tests.support import wait_until
from tests.support.mqtt import Broker, Device
from tests.support.reliability import (
    as_messages,
    db_name,
    env_float,
    record,
    settle,
    start_ingest,
    stored_count,
    tally,
    traffic,
)

KILLS = int(env_float("CPM_RELIABILITY_KILLS", 3))
TOTAL = 6000


@pytest.mark.slow
def test_repeated_sigkill_mid_stream_stores_every_message_once(
    seeded_engine: Engine,
    database_url: str,
    small_community: DemoCommunity,
    topic_prefix: str,
    broker: Broker,
) -> None:
    sent = traffic(small_community, topic_prefix, TOTAL)
    client_id = f"rel-kill-{uuid.uuid4().hex[:6]}"
    extra = {"CPM_INGEST_BATCH_SIZE": "50"}  # many small commits: kills land between them
    ingest = start_ingest(database_url, broker.url, topic_prefix, client_id, **extra)
    device = Device(broker.url)
    recoveries: list[float] = []
    try:
        sender = threading.Thread(
            target=device.stream, args=(as_messages(sent),), kwargs={"pace_every": 50}
        )
        sender.start()
        for kill in range(1, KILLS + 1):
            # kill when the stream is well under way, but before it is all stored
            threshold = TOTAL * kill // (KILLS + 2)
            wait_until(lambda t=threshold: stored_count(seeded_engine) > t, timeout=120)
            ingest.kill()
            killed_at = stored_count(seeded_engine)
            assert killed_at < TOTAL, "the kill came too late to prove anything"
            ingest.close()
            restarted = time.monotonic()
            ingest = start_ingest(database_url, broker.url, topic_prefix, client_id, **extra)
            wait_until(lambda k=killed_at: stored_count(seeded_engine) > k, timeout=60)
            recoveries.append(time.monotonic() - restarted)
        sender.join(120)
        device.wait_acknowledged()
        settle(seeded_engine, TOTAL)
        assert ingest.stop() == 0, ingest.log()[-3000:]
    finally:
        device.close()
        ingest.close()
    result = tally(seeded_engine, sent)
    record(
        scenario="1",
        database=db_name(database_url),
        sent=result.sent,
        stored=result.stored,
        lost=result.lost,
        doubled=result.doubled,
        recovery_s=max(recoveries),
        notes=f"{KILLS} kills; recovery = restart to first new commit (worst of "
        f"{', '.join(f'{r:.1f}' for r in recoveries)} s)",
    )
    assert result.lost == 0, result.missing
    assert result.doubled == 0
