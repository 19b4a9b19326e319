"""Scenario 4: every message published twice, and a device that was cut off for an hour
replaying its whole backlog (including what had got through before): each message is
stored once, and the coverage roll-ups equal those of a single clean send of the same
messages into a second database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.core.db import make_engine
from services.core.demo import DemoCommunity
from services.core.models.events import ROLLUP_COUNTERS
from services.core.seed import load_demo
from services.ingest.service import IngestService
from tests.support import wait_until
from tests.support.env import TEST_SECRET
from tests.support.mqtt import Broker, Device
from tests.support.reliability import (
    Sent,
    as_messages,
    db_name,
    record,
    stored_count,
    tally,
    traffic,
)

TOTAL = 3000
CHECKPOINTS = 10
OFFLINE_CP = "cp-004"  # the device that lost its connection for the hour


def rollups(engine: Engine) -> dict[tuple[str, str], tuple[int, ...]]:
    columns = ", ".join(ROLLUP_COUNTERS)
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT checkpoint_id, bucket, {columns} FROM coverage_rollup"))
        return {(r[0], str(r[1])): tuple(r[2:]) for r in rows}


def passages(engine: Engine) -> dict[tuple[str, str], tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT checkpoint_id, msg_id, registration, screened, screening FROM passage")
        )
        return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def dirty_order(sent: list[Sent]) -> list[tuple[str, bytes]]:
    """Live traffic twice over (each message repeated at once, as a device that missed
    its PUBACK does); the cut-off device gets its first ten minutes through, then
    replays the whole hour, twice."""
    offline = [s for s in sent if s.checkpoint_id == OFFLINE_CP]
    got_through = set(id(s) for s in offline[: len(offline) // 6])
    out: list[tuple[str, bytes]] = []
    for s in sent:
        if s.checkpoint_id != OFFLINE_CP:
            out += [(s.topic, s.payload)] * 2
        elif id(s) in got_through:
            out.append((s.topic, s.payload))
    for _ in range(2):
        out += as_messages(offline)
    return out


@pytest.mark.slow
def test_duplicates_and_an_hour_of_backlog_store_once_with_unchanged_coverage(
    seeded_engine: Engine,
    database_url: str,
    twin_database_url: str,
    small_community: DemoCommunity,
    topic_prefix: str,
    make_settings: Callable[..., Any],
    broker: Broker,
) -> None:
    # a broker of its own that queues without limit, as the shipped configuration does:
    # the system broker's default of 1000 queued messages drops some when ingest falls
    # behind a device replaying flat out
    clean_prefix = topic_prefix.replace("/cpm/v1", "/clean/cpm/v1")
    clean_engine = make_engine(twin_database_url)
    load_demo(clean_engine, small_community, TEST_SECRET)
    start = datetime.now(UTC) - timedelta(minutes=62)
    hour = timedelta(hours=1)
    sent = traffic(
        small_community, topic_prefix, TOTAL, start=start, span=hour, checkpoints=CHECKPOINTS
    )
    clean = traffic(
        small_community, clean_prefix, TOTAL, start=start, span=hour, checkpoints=CHECKPOINTS
    )
    dirty = dirty_order(sent)
    services = [
        IngestService(make_settings(mqtt_url=broker.url, ingest_session_expiry_s=600)),
        IngestService(
            make_settings(
                mqtt_url=broker.url,
                ingest_session_expiry_s=600,
                database_url=twin_database_url,
                topic_prefix=clean_prefix,
            )
        ),
    ]
    device = Device(broker.url)
    try:
        for service in services:
            service.start()
        device.stream(as_messages(clean))
        device.stream(dirty)
        device.wait_acknowledged()
        wait_until(lambda: services[0].stats.received >= len(dirty), timeout=90)
        wait_until(lambda: services[1].stats.received >= len(clean), timeout=90)
        for service in services:
            assert service.wait_idle(timeout=60)
    finally:
        device.close()
        for service in services:
            service.stop()
    result = tally(seeded_engine, sent)
    dirty_rollups, clean_rollups = rollups(seeded_engine), rollups(clean_engine)
    changed = sum(
        1
        for key in dirty_rollups.keys() | clean_rollups.keys()
        if dirty_rollups.get(key) != clean_rollups.get(key)
    )
    dirty_passages, clean_passages = passages(seeded_engine), passages(clean_engine)
    clean_count = stored_count(clean_engine)
    clean_engine.dispose()
    record(
        scenario="4",
        database=db_name(database_url),
        sent=result.sent,
        published=len(dirty),
        stored=result.stored,
        lost=result.lost,
        doubled=result.doubled,
        notes=f"{len(dirty) - len(sent)} extra publishes ({OFFLINE_CP} replayed 1 h twice); "
        f"roll-up buckets differing from a clean send: {changed} of {len(clean_rollups)}; "
        f"ingest counted {services[0].stats.duplicates} duplicates",
    )
    assert result.lost == 0, result.missing
    assert result.doubled == 0
    assert clean_count == TOTAL
    assert dirty_rollups == clean_rollups
    assert dirty_passages == clean_passages  # same classification and screening
