"""The roster night through the broker on both databases: its staff and roster imported
by CSV, the default requirements installed through the API, every message published to
the real ingest, then the alert service on a simulated clock ticking every 5 minutes.

Every broken requirement raises exactly the alerts the manifest predicts (night role
mix included), each opened at the first tick after it should hold and ended at the
first tick after it should end, and nothing else; the pro-forma checkpoint is flagged
and no honest one; coverage by requirement equals a recount from the manifest's duty
intervals; a fever cannot be resolved without a disposition."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from devices.simulator.roster_night import build, csv_text, manifest
from services.alerts.service import AlertService
from services.core.demo import DemoCommunity
from services.core.registry_import import ImportMode, import_csv
from services.core.tables import fever_case_t, screening_quality_t
from services.ingest.service import IngestService
from tests.support import TEST_SECRET, Publisher, wait_until
from tests.support.alerts import Clock, alerts
from tests.support.api import bearer
from tests.support.ingest import stored, topic

TZ = "Asia/Shanghai"
TICK = timedelta(minutes=5)
NIGHT_RULE = {"police", "medical", "community"}


def first_tick(ticks: list[datetime], moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return next(t for t in ticks if t >= moment)


def recount(
    intervals: list[dict[str, Any]], cp: str, start: datetime, end: datetime
) -> tuple[int, int]:
    """(minutes met, minutes governed) minute by minute, from the manifest's intervals:
    23:00-06:00 three on duty with police, medical and community; else at least one."""
    tz = ZoneInfo(TZ)
    met = governed = 0
    t = start
    while t < end:
        here = [
            i["role"] for i in intervals if i["checkpoint_id"] == cp and i["on"] <= t < i["off"]
        ]
        hour = t.astimezone(tz).hour
        night = hour >= 23 or hour < 6
        ok = len(here) >= 3 and set(here) >= NIGHT_RULE if night else len(here) >= 1
        governed += 1
        met += ok
        t += timedelta(minutes=1)
    return met, governed


def test_roster_night_raises_exactly_its_manifest(
    ingest: IngestService,
    device: Publisher,
    seeded_engine: Engine,
    small_community: DemoCommunity,
    client: TestClient,
    api_keys: dict[str, str],
    make_settings: Callable[..., Any],
) -> None:
    night = build(small_community, datetime.now(UTC), TZ)
    expected = manifest(night)
    json.dumps(expected)  # the manifest is plain data
    for entity, rows in (("staff", night.staff), ("rosters", night.shifts)):
        result = import_csv(
            seeded_engine, entity, csv_text(rows), ImportMode.ALL_OR_NOTHING, TEST_SECRET
        )
        assert result.errors == [] and result.imported == len(rows), result.errors
    admin = bearer(api_keys["admin"])
    assert client.post("/api/v1/roster/requirements/defaults", headers=admin).status_code == 201

    device.publish_many(
        [(topic(ingest, cp, kind), json.dumps(body).encode()) for cp, kind, body in night.messages]
    )
    wait_until(lambda: ingest.stats.received >= len(night.messages), timeout=60)
    assert ingest.wait_idle()
    assert stored(seeded_engine, "dead_letter") == 0
    assert stored(seeded_engine, "duty_event") == sum(k == "duty" for _, k, _ in night.messages)

    clock = Clock(night.start + TICK)
    service = AlertService(make_settings(), seeded_engine, clock=clock)
    ticks: list[datetime] = []
    while clock.now <= night.end:
        ticks.append(clock.now)
        service.process()
        service.run_timers()
        clock.advance(TICK.total_seconds())

    raised = [a for a in alerts(seeded_engine) if a.type != "fever"]
    got = Counter((a.type, a.checkpoint_id, a.subject) for a in raised)
    want = Counter((a["type"], a["checkpoint_id"], a["subject"]) for a in night.alerts)
    assert got == want
    by_key = {(a.type, a.checkpoint_id, a.subject): a for a in raised}
    for a in night.alerts:
        alert = by_key[(a["type"], a["checkpoint_id"], a["subject"])]
        assert alert.opened_at == first_tick(ticks, a["holds_from"]), a
        assert alert.resolved_at == first_tick(ticks, a["ends"]), a
    gap = by_key[("staffing_gap", night.checkpoints["role_mix"], "")]
    assert gap.details["missing_roles"] == ["medical"] and gap.details["short"] == 0

    # screening quality: the pro-forma lane suspect, every honest lane ok
    with seeded_engine.connect() as conn:
        verdicts = {r.checkpoint_id: r.status for r in conn.execute(select(screening_quality_t))}
    assert verdicts.pop(night.checkpoints["proforma"]) == "suspect"
    assert set(verdicts.values()) == {"ok"}

    # fever cases: one decided by the medic's normal re-check, one left for people
    fevers = {a.checkpoint_id: a for a in alerts(seeded_engine, "fever")}
    assert len(fevers) == len(night.fevers)
    with seeded_engine.connect() as conn:
        cases = {r.checkpoint_id: r for r in conn.execute(select(fever_case_t))}
    for fever in night.fevers:
        cp = fever["checkpoint_id"]
        assert (cases[cp].disposition, cases[cp].decided_by) == (
            fever["decided"],
            fever["decided_by"],
        )
        assert fevers[cp].status == ("resolved" if fever["decided"] else "open")
    pending = fevers[night.checkpoints["role_mix"]]
    officer = bearer(api_keys["officer"])
    url = f"/api/v1/alerts/{pending.id}/resolve"
    assert client.post(url, json={"outcome": "handled_on_site"}, headers=officer).status_code == 422
    decided = client.post(
        url,
        json={"outcome": "called_120", "decided_by": f"rn-{night.checkpoints['role_mix'][3:]}-p"},
        headers=officer,
    )
    assert decided.status_code == 200

    # coverage by requirement equals a recount from the manifest's duty intervals
    window = {"from": night.start.isoformat(), "to": night.end.isoformat()}
    report = client.get("/api/v1/roster/coverage", params=window, headers=admin).json()
    figures = {c["checkpoint_id"]: c for c in report["checkpoints"]}
    for cp in night.checkpoints.values():
        met, governed = recount(night.intervals, cp, night.start, night.end)
        assert (figures[cp]["met_minutes"], figures[cp]["required_minutes"]) == (met, governed), cp
