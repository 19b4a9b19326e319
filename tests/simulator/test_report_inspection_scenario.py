"""The inspection scenario's manifest equals what the daily reports of its days show:
signed inspections and passes (in all and per checklist), findings opened, the ones
still open at the last day's end and those past their deadline then, enterprises
resumed and checked the same day; and the XLSX of a day, opened with openpyxl, lists
that day's inspections and resumed enterprises (credit codes as text)."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlmodel import Session

from devices.simulator.inspection_runner import run_inspections
from devices.simulator.inspections import plan_inspections
from services.core.report_model import day_window
from services.core.supervision_templates import load_default_templates
from tests.support.api import bearer

API = "/api/v1/supervision"
REPORT = "/api/v1/reports/daily"
START = date(2020, 2, 21)
DAYS = 3
TZ = "Asia/Shanghai"


def test_scenario_manifest_equals_the_daily_reports(
    api_app: FastAPI, client: TestClient, api_keys: dict[str, str]
) -> None:
    with Session(api_app.state.engine) as session:
        load_default_templates(session)
    client.headers.update(bearer(api_keys["officer"]))
    sites = client.get("/api/v1/sites").json()
    checklists = client.get(f"{API}/checklists").json()
    items = {c["code"]: [i["code"] for i in c["items"] if i["parent_code"]] for c in checklists}
    plan = plan_inspections(sites, items, START, DAYS, TZ, seed=3, enterprises=20, fail_rate=0.15)
    manifest = run_inspections(client, plan, clock=lambda: datetime.now(UTC))
    assert manifest["findings"]["open"] and manifest["findings"]["closed"]

    days = [START + timedelta(days=n) for n in range(DAYS)]
    reports: list[dict[str, Any]] = []
    for day in days:
        response = client.get(REPORT, params={"date": day.isoformat()})
        assert response.status_code == 200, response.text
        reports.append(response.json())

    def total(name: str) -> float:
        return sum(r["community"]["figures"][name] for r in reports)

    assert total("inspections") == manifest["inspections"]["signed"]
    assert total("inspections_passed") == manifest["inspections"]["passed"]
    signed: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for report in reports:
        (section,) = [s for s in report["sections"] if s["key"] == "inspections"]
        for row in section["rows"]:
            code = row[5].rsplit(" v", 1)[0]  # "enterprise v1"
            signed[code] += 1
            passed[code] += 1 if row[7] else 0
    assert {
        code: {"inspections": signed[code], "passed": passed[code]} for code in sorted(signed)
    } == manifest["inspections"]["by_checklist"]

    findings = manifest["findings"]
    assert total("findings") == findings["open"] + findings["fixed_on_spot"] + findings["closed"]
    last = reports[-1]["community"]["figures"]
    assert last["open_rectifications"] == findings["open"]
    end_of_last_day = day_window(days[-1], TZ)[1]
    overdue = [d for d in findings["open_deadlines"] if datetime.fromisoformat(d) < end_of_last_day]
    assert last["overdue_rectifications"] == len(overdue)

    enterprises = manifest["enterprises"]
    assert total("enterprises_resumed") == enterprises["resumed"]
    assert total("checked_same_day") == enterprises["checked_same_day"]
    assert enterprises["checked_same_day"] < enterprises["resumed"]  # some were late
    # the sites' figures add up to the community's
    for report in reports:
        for name in ("inspections", "findings", "enterprises_resumed", "checked_same_day"):
            by_site = sum(s["figures"][name] for s in report["sites"])
            assert by_site == report["community"]["figures"][name], name

    busiest = max(range(DAYS), key=lambda n: reports[n]["community"]["figures"]["inspections"])
    xlsx = client.get(REPORT, params={"date": days[busiest].isoformat(), "format": "xlsx"})
    book = load_workbook(io.BytesIO(xlsx.content))
    inspections = list(book["督查记录"].iter_rows(min_row=2, values_only=True))
    assert len(inspections) == reports[busiest]["community"]["figures"]["inspections"]
    resumed = list(book["复工企业"].iter_rows(min_row=2))
    assert len(resumed) == reports[busiest]["community"]["figures"]["enterprises_resumed"]
    codes = {e.credit_code for e in plan.enterprises if e.resumed_on == days[busiest]}
    assert {row[2].value for row in resumed} == codes
    assert all(row[2].data_type == "s" and row[2].number_format == "@" for row in resumed)
