"""End to end: a simulated scenario through the real broker into the ingest service, and
the database compared with the simulator's manifest, exactly (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from services.core.demo import DemoCommunity
from services.core.models import Passage
from services.core.settings import Settings
from services.ingest.service import IngestService
from tests.support.simulation import (
    RATES,
    ingest_for_simulation,
    rows,
    run_scenario,
    scalar,
    settle,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(ingest_session_expiry_s=60)
    return settings


@pytest.fixture
def ingest(
    seeded_engine: Engine, settings: Settings, small_community: DemoCommunity
) -> Iterator[IngestService]:
    with ingest_for_simulation(settings, seeded_engine, small_community) as service:
        yield service


def per_checkpoint(engine: Engine, sql: str) -> dict[str, Counter[str]]:
    """`sql` selects (checkpoint_id, key, count)."""
    result: dict[str, Counter[str]] = {}
    for cp_id, key, n in rows(engine, sql):
        result.setdefault(cp_id, Counter())[str(key)] += n
    return result


def manifest_per_checkpoint(manifest: dict[str, Any], field: str) -> dict[str, Counter[str]]:
    result = {}
    for cp_id, counts in manifest["checkpoints"].items():
        values = Counter({k: v for k, v in counts[field].items() if v})
        if values:
            result[cp_id] = values
    return result


def test_the_database_matches_the_manifest_exactly(
    ingest: IngestService,
    seeded_engine: Engine,
    settings: Settings,
    small_community: DemoCommunity,
) -> None:
    manifest = run_scenario(small_community, settings, "unregistered-wave")
    settle(seeded_engine, ingest, manifest)
    engine, totals = seeded_engine, manifest["totals"]
    assert manifest["completed"] and manifest["unacknowledged"] == 0
    incidents = totals["incidents"]
    for name in (
        "visitor",
        "borrowed_pass",
        "fever",
        "unscreened",
        "quarantine_attempt",
        "implausible_reading",
        "duplicate",
        "unregistered_vehicle",
    ):
        assert incidents.get(name, 0) > 0, name  # the run exercised it

    # passages by kind and direction, registration statuses, per checkpoint
    assert per_checkpoint(
        engine,
        "SELECT checkpoint_id, kind || '_' || direction, count(*) FROM passage GROUP BY 1, 2",
    ) == manifest_per_checkpoint(manifest, "passages")
    assert per_checkpoint(
        engine, "SELECT checkpoint_id, registration, count(*) FROM passage GROUP BY 1, 2"
    ) == manifest_per_checkpoint(manifest, "registration")
    # screening: how, and how many, per checkpoint
    assert per_checkpoint(
        engine,
        "SELECT checkpoint_id, screening, count(*) FROM passage WHERE screened GROUP BY 1, 2",
    ) == manifest_per_checkpoint(manifest, "screening")
    unscreened = scalar(
        engine, "SELECT count(*) FROM passage WHERE kind = 'person' AND NOT screened"
    )
    assert unscreened == totals["persons_unscreened"]
    assert (
        scalar(engine, "SELECT count(*) FROM passage WHERE quarantined")
        == (totals["quarantined_passages"])
    )
    # readings: from handheld thermometers and from the gate terminals, fevers, faults
    assert per_checkpoint(
        engine, "SELECT checkpoint_id, source, count(*) FROM reading GROUP BY 1, 2"
    ) == manifest_per_checkpoint(manifest, "readings")
    assert scalar(engine, "SELECT count(*) FROM reading WHERE fever") == totals["fevers"]
    assert (
        scalar(engine, "SELECT count(*) FROM reading WHERE implausible")
        == (totals["implausible_readings"])
    )
    # duty changes, device status history (wills included), clocks that were overruled
    assert per_checkpoint(
        engine, "SELECT checkpoint_id, action, count(*) FROM duty_event GROUP BY 1, 2"
    ) == manifest_per_checkpoint(manifest, "duty")
    assert scalar(engine, "SELECT count(*) FROM device_status_event") == (
        totals["messages"]["status"] + totals["wills_expected"]
    )
    drifted = totals["clock_drift_messages"]
    assert drifted.get("entry", 0) > 0
    assert scalar(engine, "SELECT count(*) FROM passage WHERE clock_adjusted") == drifted["entry"]
    assert scalar(
        engine, "SELECT count(*) FROM reading WHERE clock_adjusted AND source = 'thermometer'"
    ) == drifted.get("reading", 0)
    # duplicates were sent and collapsed
    assert ingest.stats.duplicates >= sum(totals["duplicates"].values()) > 0
    assert scalar(engine, "SELECT count(*) FROM passage") == totals["passages_total"]
    # the hourly roll-ups add up to the same passages and screenings
    assert (
        scalar(engine, "SELECT coalesce(sum(passages), 0) FROM coverage_rollup")
        == (totals["passages_total"])
    )
    assert (
        scalar(engine, "SELECT coalesce(sum(screened_persons), 0) FROM coverage_rollup")
        == (totals["persons_screened"])
    )
    assert not scalar(engine, "SELECT count(*) FROM dead_letter")  # all of it understood


def test_the_outage_backlog_is_stored_with_original_timestamps_and_nothing_lost(
    ingest: IngestService,
    seeded_engine: Engine,
    settings: Settings,
    small_community: DemoCommunity,
) -> None:
    rates = replace(RATES, device_drop=0.0, clock_drift=0.0, duplicate=0.0)
    manifest = run_scenario(
        small_community,
        settings,
        "broker-outage",
        passages_per_person_day=30.0,
        rates=rates,
    )
    settle(seeded_engine, ingest, manifest)
    totals = manifest["totals"]
    held = totals["backlog_messages"]
    assert held.get("entry", 0) > 0
    window = manifest["checkpoints"]["cp-001"]["device_windows"][0]
    t0, t1 = (datetime.fromisoformat(window[k]).astimezone(UTC) for k in ("start", "end"))
    with seeded_engine.connect() as conn:  # through the model: typed, tz-aware times
        stored = list(
            conn.execute(
                select(col(Passage.ts), col(Passage.device_ts), col(Passage.clock_adjusted))
            )
        )
    replayed = [r for r in stored if t0 <= r.ts < t1]
    assert len(replayed) == held["entry"]
    assert all(r.ts == r.device_ts and not r.clock_adjusted for r in replayed)
    assert scalar(seeded_engine, "SELECT count(*) FROM passage") == totals["passages_total"]
    assert (
        scalar(seeded_engine, "SELECT count(*) FROM reading WHERE source = 'thermometer'")
        == (totals["readings"]["thermometer"])
    )
    assert scalar(seeded_engine, "SELECT count(*) FROM duty_event") == totals["messages"]["duty"]
    # the screening of replayed passages is as planned too
    assert (
        scalar(seeded_engine, "SELECT count(*) FROM passage WHERE screened")
        == (totals["persons_screened"])
    )
    assert not scalar(seeded_engine, "SELECT count(*) FROM dead_letter")
