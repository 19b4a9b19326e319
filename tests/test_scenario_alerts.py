"""A simulated scenario through the broker, ingest and the alert rules: the alerts raised
account for exactly the incidents the simulator's manifest says it injected."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text

from services.alerts.service import AlertService
from services.core.demo import DemoCommunity
from services.core.settings import Settings
from services.ingest.service import IngestService
from tests.test_simulator_e2e import run_scenario, settle

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(ingest_session_expiry_s=60)
    return settings


def occurrences(engine: Engine) -> dict[str, int]:
    """Alert type → incidents it stands for (repeats of an open alert add occurrences)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT type, sum(occurrences) FROM alert GROUP BY type"))
        return {row[0]: int(row[1]) for row in rows}


@pytest.mark.parametrize("scenario", ["fever-cluster", "unregistered-wave"])
def test_alerts_account_for_every_injected_incident(
    scenario: str,
    ingest: IngestService,
    seeded_engine: Engine,
    settings: Settings,
    small_community: DemoCommunity,
) -> None:
    manifest = run_scenario(small_community, settings, scenario)
    settle(seeded_engine, ingest, manifest)
    alerts = AlertService(settings, seeded_engine)
    try:
        while alerts.process():
            pass
    finally:
        alerts.client.disconnect()
    totals = manifest["totals"]
    raised = occurrences(seeded_engine)
    not_registered = sum(
        n for status, n in totals["registration"].items() if status != "registered"
    )
    assert totals["fevers"] > 0 and not_registered > 0
    assert raised.get("fever", 0) == totals["fevers"]
    assert raised.get("unregistered_entry", 0) == not_registered
    assert raised.get("quarantine_breach", 0) == totals["quarantined_passages"]
    with seeded_engine.connect() as conn:
        # one open alert per dedup key, enforced by the database
        keys = conn.execute(
            text(
                "SELECT dedup_key, count(*) FROM alert WHERE status <> 'resolved' "
                "GROUP BY dedup_key HAVING count(*) > 1"
            )
        ).all()
    assert keys == []
