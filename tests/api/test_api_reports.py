"""The daily report (日报): its figures equal the coverage and alerts APIs for the same
local day (real messages through the broker and the real ingest, alerts from the real
alert processor), the XLSX opened with openpyxl (Chinese sheet names, ids as text,
formula-looking values neutralised), the printable page, roles and bad dates."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, insert

from services.alerts.service import AlertService
from services.core.demo import DemoCommunity
from services.core.models import Checkpoint, Site
from services.core.report_model import REPORTED_TYPES, day_window
from services.ingest.service import IngestService
from tests.support import Publisher, wait_until
from tests.support.alerts import Clock
from tests.support.api import bearer

TZ = "Asia/Shanghai"
REPORT = "/api/v1/reports/daily"
SITES = ("res-01", "res-02", "res-03")


def yesterday() -> date:
    return datetime.now(UTC).astimezone(ZoneInfo(TZ)).date() - timedelta(days=1)


@pytest.fixture
def ingest(seeded_engine: Engine, make_settings: Any, mqtt_url: str) -> Iterator[IngestService]:
    service = IngestService(make_settings(ingest_session_expiry_s=60), seeded_engine)
    service.start()
    yield service
    service.stop()


def day_messages(
    community: DemoCommunity, prefix: str, start: datetime, end: datetime, seed: int
) -> list[tuple[str, dict[str, Any]]]:
    """Entries, readings (fevers among them), duty and device status over [start, end)
    at checkpoints of three sites; a few entries just outside the window."""
    rng = random.Random(seed)
    cps = [cp.id for cp in community.checkpoints if cp.site_id in SITES][:8]
    span = int((end - start).total_seconds())
    out: list[tuple[str, dict[str, Any]]] = []
    for n in range(160):
        ts = start + timedelta(seconds=rng.randint(0, span - 1))
        if n < 6:  # outside: in the day before's last hour
            ts = start - timedelta(minutes=10 * (n + 1))
        cp, person = rng.choice(cps), rng.choice(community.people)
        entry: dict[str, Any] = {
            "msg_id": f"e{seed}-{n}",
            "ts": ts.isoformat(),
            "direction": rng.choice(["in", "out"]),
            "kind": "person",
            "id_number": person.id_number,
            "qr_pass": person.pass_code if rng.random() < 0.85 else "QR-unknown",
        }
        if rng.random() < 0.5:
            entry["temp_c"] = rng.choice([36.4, 36.7, 38.2])
        out.append((f"{prefix}/cp/{cp}/entry", entry))
    for k, (cp, staff) in enumerate(zip(cps[:4], community.staff, strict=False)):
        on = start + timedelta(hours=1 + k)
        for action, at in (("on", on), ("off", on + timedelta(hours=6))):
            body = {"msg_id": f"d{seed}-{k}-{action}", "ts": at.isoformat(), "staff_id": staff.id}
            out.append((f"{prefix}/cp/{cp}/duty", {**body, "action": action}))
        out.append((f"{prefix}/cp/{cp}/status", {"state": "online", "ts": on.isoformat()}))
        off = on + timedelta(hours=10)
        out.append((f"{prefix}/cp/{cp}/status", {"state": "offline", "ts": off.isoformat()}))
    return out


def publish(ingest: IngestService, mqtt_url: str, messages: list[tuple[str, Any]]) -> None:
    device = Publisher(mqtt_url)
    try:
        for topic, body in messages:
            device.publish(topic, body)
    finally:
        device.close()
    wait_until(lambda: ingest.stats.received >= len(messages), timeout=60)
    assert ingest.wait_idle()


def api_alert_ids(client: TestClient, key: dict[str, str], **params: Any) -> list[int]:
    ids: list[int] = []
    cursor = None
    while True:
        more = {"cursor": cursor} if cursor else {}
        response = client.get("/api/v1/alerts", params={**params, **more}, headers=key)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return sorted(ids)


def test_report_figures_equal_the_coverage_and_alert_apis_for_the_same_day(
    ingest: IngestService,
    mqtt_url: str,
    seeded_engine: Engine,
    small_community: DemoCommunity,
    make_settings: Any,
    client: TestClient,
    api_keys: dict[str, str],
) -> None:
    day = yesterday()
    start, end = day_window(day, TZ)
    messages = day_messages(small_community, ingest.settings.topic_prefix, start, end, 11)
    publish(ingest, mqtt_url, messages)
    # alerts: those of the day opened within it, one batch opened before it
    clock = Clock(start + timedelta(hours=20))
    alerts = AlertService(make_settings(), seeded_engine, clock=clock)
    assert alerts.process() > 0
    officer = bearer(api_keys["officer"])
    installed = client.post(
        "/api/v1/roster/requirements/defaults", headers=bearer(api_keys["admin"])
    )
    assert installed.status_code == 201, installed.text
    fevers = api_alert_ids(client, officer, type="fever")
    assert len(fevers) >= 2
    resolved = client.post(
        f"/api/v1/alerts/{fevers[0]}/resolve",
        json={
            "outcome": "sent_to_fever_clinic",
            "note": "38.4 again by handheld",
            "decided_by": small_community.staff[0].id,
        },
        headers=officer,
    )
    assert resolved.status_code == 200, resolved.text

    report = client.get(REPORT, params={"date": day.isoformat()}, headers=officer).json()
    assert report["day"] == day.isoformat() and report["timezone"] == TZ
    window = {"from": start.isoformat(), "to": end.isoformat()}
    scopes = {s["site_id"]: s for s in report["sites"]}
    assert sorted(scopes) == sorted(s.id for s in small_community.sites)
    for site_id, scope in [(None, report["community"]), *((s, scopes[s]) for s in SITES)]:
        params = {**window, "bucket": "day"} | ({"site_id": site_id} if site_id else {})
        api = client.get("/api/v1/metrics/coverage", params=params, headers=officer).json()
        total, mine = api["total"], scope["coverage"]
        assert scope["checkpoints"] == api["checkpoints"]
        assert mine["passages"] == total["passages"]["total"]
        assert mine["persons"] == total["passages"]["persons"]
        assert mine["passages_in"] == total["passages"]["in"]
        for name in ("screened_persons", "registered", "unregistered", "quarantine_breaches"):
            assert mine[name] == total[name], name
        for name in ("readings", "fevers", "alerts_opened", "checkpoint_minutes"):
            assert mine[name] == total[name], name
        for name in ("staffed_minutes", "online_minutes", "temperature_coverage"):
            assert mine[name] == total[name], name
        for name in ("registration_coverage", "staffing_coverage", "device_uptime"):
            assert mine[name] == total[name], name
        for alert_type in REPORTED_TYPES:
            filters = {**window, "type": alert_type} | ({"site_id": site_id} if site_id else {})
            assert scope["alerts"][alert_type] == len(api_alert_ids(client, officer, **filters))
    community = report["community"]["coverage"]
    assert community["passages"] == 154  # 160 entries, 6 of them in the day before
    assert 0 < community["registration_coverage"] < 1 and community["fevers"] > 0
    assert community["staffed_minutes"] > 0  # the duty intervals count
    # the alert lines are the alerts API's rows of the day, statuses included
    lines = {line["id"]: line for line in report["alerts"]}
    assert sorted(lines) == api_alert_ids(client, officer, **window)
    assert lines[fevers[0]]["status"] == "resolved"
    assert lines[fevers[0]]["outcome"] == "sent_to_fever_clinic"
    assert report["community"]["fevers_resolved"] == 1
    assert report["community"]["fevers_open"] == len(fevers) - 1
    # fever dispositions and hours served: those of the roster API for the same window
    # (the fever-cases API goes by the fever reading's time, the alert lines by opening)
    cases = client.get("/api/v1/fever-cases", params=window, headers=officer).json()
    wider = {**window, "from": (start - timedelta(hours=2)).isoformat()}
    every_case = client.get("/api/v1/fever-cases", params=wider, headers=officer).json()
    decided = {c["alert_id"]: c["disposition"] for c in every_case}
    assert decided[fevers[0]] == "sent_to_fever_clinic"
    for line in report["alerts"]:
        if line["type"] == "fever":
            assert line["disposition"] == decided[line["id"]], line
    sections = {s["key"]: s for s in report["sections"]}
    by_alert = {int(r[0]): r for r in sections["fever_dispositions"]["rows"]}
    assert sorted(by_alert) == sorted(c["alert_id"] for c in cases)
    for case in cases:
        assert by_alert[case["alert_id"]][5:7] == [case["disposition"], case["decided_by"]]
    hours = client.get("/api/v1/roster/hours", params=window, headers=officer).json()
    assert hours["people"], "the duty messages served hours"
    assert sorted((r[0], r[3], r[4]) for r in sections["hours"]["rows"]) == sorted(
        (p["staff_id"], p["checkpoint_id"], round(p["hours"], 2)) for p in hours["people"]
    )
    assert dict(sections["hours_by_role"]["rows"]) == {
        role: round(value, 2) for role, value in hours["by_role"].items()
    }
    assert report["community"]["figures"]["hours_served"] == pytest.approx(
        sum(round(p["hours"], 2) for p in hours["people"]), abs=1e-9
    )
    # staffing by requirement: the roster coverage API's minutes, per site and in all
    cov = client.get("/api/v1/roster/coverage", params=window, headers=officer).json()
    assert cov["required_minutes"] > 0 and 0 < cov["met_minutes"] < cov["required_minutes"]
    figures = report["community"]["figures"]
    assert figures["required_minutes"] == pytest.approx(cov["required_minutes"], abs=1e-6)
    assert figures["met_minutes"] == pytest.approx(cov["met_minutes"], abs=1e-6)
    site_of = {cp.id: cp.site_id for cp in small_community.checkpoints}
    for site_id in SITES:
        rows = [c for c in cov["checkpoints"] if site_of[c["checkpoint_id"]] == site_id]
        mine = scopes[site_id]["figures"]
        assert mine["met_minutes"] == pytest.approx(sum(c["met_minutes"] for c in rows), abs=1e-6)
    # the day before holds none of it
    before = client.get(
        REPORT, params={"date": (day - timedelta(days=1)).isoformat()}, headers=officer
    ).json()
    assert before["alerts"] == [] and before["community"]["coverage"]["passages"] == 6


def test_xlsx_has_chinese_sheets_text_ids_and_neutralised_formulas(
    seeded_engine: Engine, client: TestClient, api_keys: dict[str, str]
) -> None:
    hostile = '=HYPERLINK("http://evil.example","x")'
    with seeded_engine.begin() as conn:
        conn.execute(
            insert(Site.__table__),
            [
                {"id": "0012", "name": hostile, "name_zh": "+1"},
                # a name with a control character XML cannot hold (found by schemathesis):
                # the workbook is still written, the character replaced
                {"id": "0013", "name": "bell\x07", "name_zh": "铃\x1b声"},
            ],
        )
        conn.execute(
            insert(Checkpoint.__table__),
            [{"id": "007", "site_id": "0012", "name": "-2", "min_staff": 1, "active": True}],
        )
    day = yesterday()
    response = client.get(
        REPORT,
        params={"date": day.isoformat(), "format": "xlsx"},
        headers=bearer(api_keys["admin"]),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert f"daily-report-{day.isoformat()}.xlsx" in response.headers["content-disposition"]
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames[:4] == ["概况", "各小区", "发热病例", "异常事件"]
    sites = book["各小区"]
    headings = [c.value for c in sites[1]]
    assert headings[:3] == ["小区编号", "小区", "检测点数"]
    rows = {row[0].value: row for row in sites.iter_rows(min_row=2)}
    site = rows["0012"]  # the id stays the text "0012", not the number 12
    assert site[0].data_type == "s" and site[0].number_format == "@"
    assert site[1].value == "'+1" and site[1].data_type == "s"  # name_zh shown first
    assert site[2].value == 1  # its one checkpoint, a number
    assert rows["0013"][1].value == "铃\ufffd声"
    for row in book["各小区"].iter_rows():
        for cell in row:
            assert cell.data_type != "f", cell.coordinate  # no formula anywhere
    overview = {r[0].value: r[1] for r in book["概况"].iter_rows(min_row=2)}
    assert overview["日期"].value == day.isoformat() and overview["日期"].data_type == "s"
    english = client.get(
        REPORT,
        params={"date": day.isoformat(), "format": "xlsx", "lang": "en"},
        headers=bearer(api_keys["admin"]),
    )
    en_rows = list(load_workbook(io.BytesIO(english.content))["Sites"].iter_rows(values_only=True))
    assert next(r for r in en_rows if r[0] == "0012")[1] == "'" + hostile


def test_printable_page_is_escaped_script_free_and_print_styled(
    seeded_engine: Engine, client: TestClient, api_keys: dict[str, str]
) -> None:
    with seeded_engine.begin() as conn:
        conn.execute(
            insert(Site.__table__), [{"id": "x-1", "name": "x", "name_zh": "<script>a()</script>"}]
        )
    response = client.get(REPORT, params={"format": "html"}, headers=bearer(api_keys["officer"]))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<script" not in page and "&lt;script&gt;a()&lt;/script&gt;" in page
    assert 'href="http://testserver/css/report.css"' in page and "各小区" in page
    css = client.get("/css/report.css")
    assert css.status_code == 200 and "@media print" in css.text


def test_roles_bad_and_future_dates(client: TestClient, api_keys: dict[str, str]) -> None:
    for role in ("viewer", "duty"):
        assert client.get(REPORT, headers=bearer(api_keys[role])).status_code == 403
    assert client.get(REPORT).status_code == 401
    officer = bearer(api_keys["officer"])
    tomorrow = yesterday() + timedelta(days=2)
    for bad in ("2020-02-30", "yesterday", "2020-1-1'--", tomorrow.isoformat(), "1999-12-31"):
        response = client.get(REPORT, params={"date": bad}, headers=officer)
        assert response.status_code == 422, (bad, response.text)
        assert "date" in response.text
    assert client.get(REPORT, params={"format": "pdf"}, headers=officer).status_code == 422
    audit = client.get("/api/v1/audit", headers=bearer(api_keys["admin"])).json()
    reads = [e for e in audit["items"] if e["action"] == "reports.daily"]
    assert len(reads) == 0  # refused requests leave no record
    today = client.get(REPORT, headers=officer).json()  # default: today so far
    assert today["day"] == (yesterday() + timedelta(days=1)).isoformat()
    audit = client.get("/api/v1/audit", headers=bearer(api_keys["admin"])).json()
    (read,) = [e for e in audit["items"] if e["action"] == "reports.daily"]
    assert json.loads(read["detail"])["date"] == today["day"] and read["role"] == "officer"
