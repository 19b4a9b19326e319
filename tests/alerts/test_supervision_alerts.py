"""Supervision alerts: an overdue rectification and a resumed enterprise not checked the
same day open an alert through the alert service and resolve when the re-inspection
closes the finding or the enterprise is checked."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from services.alerts.service import AlertService
from services.alerts.supervision_rules import (
    OpenFinding,
    ResumedFact,
    day_end,
    enterprise_unchecked,
    rectification_overdue,
)
from services.core.supervision_templates import load_default_templates
from tests.support.alerts import Clock, alerts
from tests.support.api import bearer
from tests.support.supervision import credit_code, make_png

API = "/api/v1/supervision"
SIG = base64.b64encode(make_png(200, 80)).decode()
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shenzhen
TZ = "Asia/Shanghai"
ITEMS = ["R1.1", "R1.2", "R2.1", "R2.2", "R3.1", "R3.2"]


def test_rules_pure() -> None:
    f = OpenFinding(1, "res-01", "cp-001", "R1.1", "gate open", T0)
    assert rectification_overdue([f], T0) == []
    (alert,) = rectification_overdue([f], T0 + timedelta(hours=5, seconds=1))
    assert alert.type == "rectification_overdue" and alert.subject == "finding:1"
    assert "5 h past the deadline" in alert.summary and alert.checkpoint_id == "cp-001"
    e = ResumedFact(7, "企业", "ind-01", "cp-060", date(2026, 3, 1), checked=False)
    end = day_end(e.resumed_on, TZ)
    assert end == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    assert enterprise_unchecked([e], end - timedelta(seconds=1), TZ) == []
    (late,) = enterprise_unchecked([e], end, TZ)
    assert late.type == "enterprise_unchecked" and late.subject == "enterprise:7"
    checked = ResumedFact(7, "企业", "ind-01", "cp-060", date(2026, 3, 1), checked=True)
    assert enterprise_unchecked([checked], end + timedelta(days=3), TZ) == []


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def keys(api_app: FastAPI, api_keys: dict[str, str]) -> dict[str, dict[str, str]]:
    with Session(api_app.state.engine) as session:
        load_default_templates(session)
    return {k: bearer(v) for k, v in api_keys.items()}


def signed(client: TestClient, who: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    made = client.post(
        f"{API}/inspections", json={"team_id": "team-3", "inspector": "x", **body}, headers=who
    )
    assert made.status_code == 201, made.text
    sign = {"signer_name": "负责人", "signature_png": SIG}
    got = client.post(f"{API}/inspections/{made.json()['id']}/sign", json=sign, headers=who)
    assert got.status_code == 200, got.text
    return got.json()


def test_overdue_rectification_alerts_until_the_reinspection_closes_it(
    client: TestClient,
    keys: dict[str, dict[str, str]],
    service: AlertService,
    seeded_engine: Engine,
    clock: Clock,
) -> None:
    deadline = T0 + timedelta(days=1)
    marks = [
        {"item_code": c, "mark": "pass"}
        if c != "R3.2"
        else {
            "item_code": c,
            "mark": "fail",
            "reason": "未张贴公告",
            "deadline": deadline.isoformat(),
        }
        for c in ITEMS
    ]
    signed(
        client,
        keys["inspector"],
        {"site_id": "res-02", "inspected_at": T0.isoformat(), "marks": marks},
    )
    clock.now = deadline
    service.run_timers()
    assert alerts(seeded_engine, "rectification_overdue") == []
    clock.now = deadline + timedelta(seconds=1)
    service.run_timers()
    service.run_timers()
    (alert,) = alerts(seeded_engine, "rectification_overdue")
    assert alert.site_id == "res-02" and alert.severity == "major" and alert.occurrences == 1
    assert alert.checkpoint_id == "cp-006"  # the site's first checkpoint
    again = [{"item_code": c, "mark": "pass"} for c in ITEMS]
    at = (deadline + timedelta(hours=2)).isoformat()
    signed(
        client,
        keys["inspector"],
        {"site_id": "res-02", "kind": "reinspection", "inspected_at": at, "marks": again},
    )
    clock.now = deadline + timedelta(hours=3)
    service.run_timers()
    (alert,) = alerts(seeded_engine, "rectification_overdue")
    assert alert.status == "resolved" and alert.outcome == "rectified"


def test_resumed_enterprise_not_checked_by_the_end_of_its_day(
    client: TestClient,
    keys: dict[str, dict[str, str]],
    service: AlertService,
    seeded_engine: Engine,
    clock: Clock,
) -> None:
    day = date(2026, 3, 1)
    body = {
        "name": "松坪山电子",
        "credit_code": credit_code(42),
        "site_id": "ind-02",
        "resumed_on": day.isoformat(),
    }
    made = client.post(f"{API}/enterprises", json=body, headers=keys["officer"])
    assert made.status_code == 201, made.text
    end = day_end(day, TZ)
    clock.now = end - timedelta(minutes=1)
    service.run_timers()
    assert alerts(seeded_engine, "enterprise_unchecked") == []
    clock.now = end
    service.run_timers()
    (alert,) = alerts(seeded_engine, "enterprise_unchecked")
    assert alert.site_id == "ind-02" and alert.subject == f"enterprise:{made.json()['id']}"
    marks = [{"item_code": c, "mark": "pass"} for c in ("E1.1", "E1.2", "E2.1", "E3.1")]
    at = (end + timedelta(hours=10)).isoformat()
    signed(
        client,
        keys["inspector"],
        {
            "enterprise_id": made.json()["id"],
            "kind": "resumption",
            "inspected_at": at,
            "marks": marks,
        },
    )
    clock.now = end + timedelta(hours=11)
    service.run_timers()
    (alert,) = alerts(seeded_engine, "enterprise_unchecked")
    assert alert.status == "resolved" and alert.outcome == "checked"
