"""The inspection scenario through the real API: its manifest equals what the API shows
(supervision metrics and findings), on SQLite and PostgreSQL; and its plan is seeded."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from devices.simulator.inspection_runner import run_inspections, signature_png
from devices.simulator.inspections import plan_inspections
from services.api.supervision_images import check_png
from services.core.supervision_templates import load_default_templates
from tests.support.api import bearer

API = "/api/v1/supervision"
START = date(2020, 2, 21)
TZ = "Asia/Shanghai"
SITES = [{"id": f"res-{n}", "kind": "residential"} for n in range(4)] + [
    {"id": f"ind-{n}", "kind": "industrial"} for n in range(2)
]
ITEMS = {"residential": ["R1.1", "R2.1"], "industrial": ["I1.1"], "enterprise": ["E1.1", "E2.1"]}


def test_the_plan_is_seeded_and_consistent() -> None:
    a = plan_inspections(SITES, ITEMS, START, 3, TZ, seed=5)
    b = plan_inspections(SITES, ITEMS, START, 3, TZ, seed=5)
    assert a.steps == b.steps and a.manifest == b.manifest
    assert a.steps != plan_inspections(SITES, ITEMS, START, 3, TZ, seed=6).steps
    assert [s.at for s in a.steps] == sorted(s.at for s in a.steps)
    m = a.manifest
    assert m["inspections"]["signed"] == len(a.steps)
    assert m["enterprises"]["checked_same_day"] <= m["enterprises"]["resumed"]
    assert check_png(signature_png(), 512 * 1024).width == 240


def test_scenario_manifest_equals_what_the_api_shows(
    api_app: FastAPI, client: TestClient, api_keys: dict[str, str]
) -> None:
    with Session(api_app.state.engine) as session:
        load_default_templates(session)
    officer = bearer(api_keys["officer"])
    client.headers.update(officer)
    sites = client.get("/api/v1/sites").json()
    checklists = client.get(f"{API}/checklists").json()
    items = {c["code"]: [i["code"] for i in c["items"] if i["parent_code"]] for c in checklists}
    plan = plan_inspections(sites, items, START, 3, TZ, seed=3, enterprises=20, fail_rate=0.15)
    manifest = run_inspections(client, plan, clock=lambda: datetime.now(UTC))
    # the scenario exercised every path
    assert manifest["findings"]["open"] and manifest["findings"]["closed"]
    assert manifest["findings"]["fixed_on_spot"]
    assert manifest["enterprises"]["checked_same_day"] < manifest["enterprises"]["resumed"]

    params = {"from_day": manifest["from_day"], "to_day": manifest["to_day"]}
    shown: dict[str, Any] = client.get(f"{API}/metrics", params=params).json()
    e, i, f = shown["enterprises"], shown["inspections"], shown["findings"]
    assert {
        k: e[k] for k in ("total", "resumed", "checked_same_day", "checks", "passed")
    } == manifest["enterprises"]
    assert (i["signed"], i["passed"]) == (
        manifest["inspections"]["signed"],
        manifest["inspections"]["passed"],
    )
    by_checklist = {
        r["template_code"]: {"inspections": r["inspections"], "passed": r["passed"]}
        for r in i["by_checklist"]
    }
    assert by_checklist == manifest["inspections"]["by_checklist"]
    expected = {k: manifest["findings"][k] for k in ("open", "fixed_on_spot", "closed", "overdue")}
    assert f == expected
    listed = client.get(f"{API}/findings", params={"limit": 1000}).json()
    assert len(listed) == sum(expected[k] for k in ("open", "fixed_on_spot", "closed"))
    overdue = client.get(f"{API}/findings", params={"overdue": True, "limit": 1000}).json()
    assert len(overdue) == expected["overdue"] == expected["open"]  # 2020: all past due
