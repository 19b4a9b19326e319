"""A history played straight into ingest's batch processor (`cpmon simulate
--direct-ingest`, the backfill of `cpmon up`) stores what the same simulation stores
through the real broker and the ingest service: the same passages, readings, duty
events, dead letters and roll-ups (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from devices.simulator.direct import (
    IngestWriterProcess,
    InProcessStore,
    ProgressLog,
    play_direct,
    progress_line,
)
from devices.simulator.runner import Simulation
from devices.simulator.scenarios import scenario_params
from services.core.db import make_engine
from services.core.demo import DemoCommunity
from services.core.seed import load_demo
from services.core.settings import Settings
from services.ingest.batch import BatchProcessor
from services.ingest.parse import Inbound
from tests.support.databases import fresh_database
from tests.support.env import TEST_SECRET
from tests.support.simulation import RATES, ingest_for_simulation, last_morning, rows, settle

pytestmark = pytest.mark.slow

# a stamp taken at publish time (clock drift) would differ between the two runs
SAME_TWICE = replace(RATES, clock_drift=0.0)

STORED = {
    "passages": "SELECT checkpoint_id, msg_id, kind, direction, registration, quarantined,"
    " temp_c, screened, screening FROM passage",
    "readings": "SELECT r.checkpoint_id, r.msg_id, r.temp_c, r.direction, r.entry_msg_id,"
    " r.implausible, r.fever, p.msg_id FROM reading r"
    " LEFT JOIN passage p ON p.id = r.passage_id",
    "duty": "SELECT checkpoint_id, msg_id, staff_id, action FROM duty_event",
    "rollups": "SELECT * FROM coverage_rollup",
    "dead letters": "SELECT checkpoint_id, kind, reason FROM dead_letter",
    "statuses": "SELECT checkpoint_id, state, device_ts FROM device_status_event",
}


def stored(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(map(tuple, rows(engine, sql)), key=repr) for name, sql in STORED.items()}


def simulation(community: DemoCommunity, settings: Settings, start: datetime) -> Simulation:
    params = scenario_params(
        "unregistered-wave",
        seed=21,
        start=start,
        duration_s=2 * 3600,
        speed=0,
        passages_per_person_day=12.0,
        heartbeat_s=300.0,
        rates=SAME_TWICE,
    )
    return Simulation(params, community, settings=settings, max_rate=3000, progress=False)


def test_a_direct_history_stores_what_the_broker_path_stores(
    database_url: str,
    seeded_engine: Engine,
    make_settings: Any,
    small_community: DemoCommunity,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    settings = make_settings(ingest_session_expiry_s=60)
    start = last_morning(settings.timezone, 2)
    with ingest_for_simulation(settings, seeded_engine, small_community) as service:
        through_broker = simulation(small_community, settings, start).run()
        settle(seeded_engine, service, through_broker)
    assert through_broker["completed"] and through_broker["unacknowledged"] == 0

    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    with fresh_database(kind, request, tmp_path) as direct_url:
        direct_engine = make_engine(direct_url)
        try:
            load_demo(direct_engine, small_community, TEST_SECRET)
            direct_settings = make_settings(database_url=direct_url)
            store = InProcessStore(BatchProcessor(direct_engine, direct_settings))
            played = simulation(small_community, direct_settings, start)
            direct = play_direct(played, store, batch=500)
            expected, got = stored(seeded_engine), stored(direct_engine)
        finally:
            direct_engine.dispose()

    assert direct["totals"] == through_broker["totals"]
    assert store.stored == played.deliveries  # what the devices sent and their wills
    assert len(expected["passages"]) == through_broker["totals"]["passages_total"] > 500
    assert any(p[-1] for p in expected["passages"]), "some passages were screened"
    for name in STORED:
        assert got[name] == expected[name], name


def test_progress_says_how_far_the_history_got_and_when_it_ends() -> None:
    start = datetime(2026, 11, 25, 12, tzinfo=UTC).timestamp()
    week = 7 * 86_400
    line = progress_line(start, start + week, start + week / 4, 300_000, 60.0)
    assert line == (
        "history: simulated 2026-11-27 06:00 UTC (25% of 7 days), "
        "300,000 messages stored, 5,000 msg/s, ETA 3m 00s"
    )
    said: list[str] = []
    clock = iter([0.0, 5.0, 16.0, 20.0]).__next__
    progress = ProgressLog(start, start + week, said.append, every_s=15, clock=clock)
    progress(start + 3600, 1000)  # 5 s in: too soon
    progress(start + week / 2, 80_000)  # 16 s in
    progress(start + week, 90_000, force=True)
    assert said == [
        "history: simulated 2026-11-29 00:00 UTC (50% of 7 days), "
        "80,000 messages stored, 5,000 msg/s, ETA 16s",
        "history: simulated 2026-12-02 12:00 UTC (100% of 7 days), "
        "90,000 messages stored, 4,500 msg/s, done",
    ]


def test_the_writer_process_dead_letters_as_ingest_does_and_ends_with_its_parent(
    seeded_engine: Engine, make_settings: Any
) -> None:
    settings = make_settings()
    now = datetime.now(UTC)
    refused = [
        Inbound(f"{settings.topic_prefix}/cp/cp-nowhere/entry", b'{"msg_id": "x"}', now),
        Inbound(f"{settings.topic_prefix}/cp/cp-001/entry", b"not json", now),
    ]
    writer = IngestWriterProcess(settings)
    try:
        writer.submit(refused)
        writer.flush()
        assert writer.stored == 2
        reasons = sorted(r[0] for r in rows(seeded_engine, "SELECT reason FROM dead_letter"))
        assert len(reasons) == 2 and reasons[0] != reasons[1], reasons
    finally:
        writer.close()
    assert writer._process.exitcode == 0

    orphan = IngestWriterProcess(settings)  # its parent gone: the pipe closes
    orphan._pipe.close()
    orphan._process.join(timeout=30)
    assert orphan._process.exitcode == 0
