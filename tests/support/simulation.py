"""Running a simulated scenario against a live ingest in the tests, and waiting until
ingest has stored what the simulator's manifest says it sent."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from devices.simulator.network import clear_retained_status
from devices.simulator.params import IncidentRates
from devices.simulator.runner import Simulation
from devices.simulator.scenarios import scenario_params
from services.core.demo import DemoCommunity
from services.core.settings import Settings
from services.ingest.service import IngestService
from tests.support.waiting import wait_until

# every incident often enough to show up in three simulated hours of 400 people
RATES = replace(
    IncidentRates(),
    visitor=0.05,
    no_pass=0.03,
    unknown_pass=0.02,
    invalid_id=0.02,
    expired_pass=0.02,
    revoked_pass=0.02,
    borrowed_pass=0.02,
    fever=0.03,
    unscreened=0.03,
    implausible_reading=0.05,
    unlinked_reading=0.3,
    duplicate=0.03,
    # per quarantined person per day: 6 people over 3 simulated hours expect 9 attempts
    # (at 3.0 it was 2.25, and no attempt at all in ~1 run of 10 failed the e2e test)
    quarantine_attempt=12.0,
    device_drop=2.0,
    clock_drift=2.0,
    staffing_gap=0.1,
)


@contextmanager
def ingest_for_simulation(
    settings: Settings, engine: Engine, community: DemoCommunity
) -> Iterator[IngestService]:
    """A running ingest; afterwards the devices' retained status is cleared."""
    service = IngestService(settings, engine)
    service.start()
    yield service
    service.stop()
    # after ingest has gone: an empty retained message would be a dead letter to it
    checkpoint_ids = [cp.id for cp in community.checkpoints]
    clear_retained_status(settings.mqtt, settings.topic_prefix, checkpoint_ids)


def last_morning(timezone: str, hours: float) -> datetime:
    """The latest local 08:00 from which `hours` of simulation end at least an hour ago:
    the morning peak, so what a run holds does not depend on when the test runs (a
    night run had no borrowed pass; a history ending at 20:30 local, too few passages)."""
    latest = datetime.now(ZoneInfo(timezone)) - timedelta(hours=hours + 1)
    morning = latest.replace(hour=8, minute=0, second=0, microsecond=0)
    if morning > latest:
        morning -= timedelta(days=1)
    return morning.astimezone(UTC)


def run_scenario(
    community: DemoCommunity, settings: Settings, scenario: str, **values: Any
) -> dict[str, Any]:
    duration_s = values.pop("duration_s", 3 * 3600)
    # a busy morning, whatever the hour the test runs at
    values.setdefault("start", last_morning(settings.timezone, duration_s / 3600))
    params = scenario_params(
        scenario,
        **{
            "seed": 21,
            "duration_s": duration_s,
            "speed": 0,
            "passages_per_person_day": 12.0,
            "heartbeat_s": 300.0,
            "rates": RATES,
            **values,
        },
    )
    simulation = Simulation(
        params,
        community,
        settings=settings,
        max_rate=3000,
        client_id_template=f"sim-{uuid.uuid4().hex[:6]}-{{checkpoint_id}}",
        progress=False,
    )
    return simulation.run()


def rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql)))


def scalar(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def settle(engine: Engine, service: IngestService, manifest: dict[str, Any]) -> None:
    totals = manifest["totals"]
    wait_until(
        lambda: (
            scalar(engine, "SELECT count(*) FROM passage") >= totals["passages_total"]
            and scalar(engine, "SELECT count(*) FROM duty_event") >= totals["messages"]["duty"]
        ),
        timeout=60,
    )
    assert service.wait_idle(quiet_s=0.5, timeout=60)
