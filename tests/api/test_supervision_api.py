"""Supervision through the API: inspections (× needs a reason, signing needs every item
and a signature, signed = immutable, corrections), findings to closure, the system's
verdict equal to the coverage API, enterprises with CSV import, the look-back plan."""

from __future__ import annotations

import base64
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert
from sqlmodel import Session

from services.api import coverage as cov
from services.core.models import DeviceStatusEvent, DutyEvent, Passage
from services.core.supervision_templates import load_default_templates
from services.ingest.state import add_rollups
from tests.support.api import assert_problem, bearer
from tests.support.supervision import credit_code, make_png

API = "/api/v1/supervision"
SIG = base64.b64encode(make_png(240, 100)).decode()
T0 = datetime(2020, 2, 21, 1, 0, tzinfo=UTC)  # 09:00 in Shenzhen
RES_ITEMS = ["R1.1", "R1.2", "R2.1", "R2.2", "R3.1", "R3.2"]


@pytest.fixture
def sup(api_app: FastAPI, client: TestClient, api_keys: dict[str, str]) -> dict[str, Any]:
    with Session(api_app.state.engine) as session:
        load_default_templates(session)
    return {k: bearer(v) for k, v in api_keys.items()}


def all_pass(*fails: str, **extra: Any) -> list[dict[str, Any]]:
    marks = []
    for code in RES_ITEMS:
        if code in fails:
            marks.append({"item_code": code, "mark": "fail", "reason": "门岗无人", **extra})
        else:
            marks.append({"item_code": code, "mark": "pass"})
    return marks


def new_inspection(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    payload = {"team_id": "team-1", "site_id": "res-01", "inspector": "李网格员", **body}
    return client.post(f"{API}/inspections", json=payload, headers=headers)


def test_inspection_cross_needs_reason_signature_and_is_immutable_once_signed(
    client: TestClient, sup: dict[str, Any]
) -> None:
    who = sup["inspector"]
    at = T0.isoformat()
    bad = new_inspection(
        client, who, inspected_at=at, marks=[{"item_code": "R1.1", "mark": "fail"}]
    )
    assert_problem(bad, 422, "R1.1: a × needs the reason")
    draft = new_inspection(client, who, inspected_at=at, marks=all_pass("R1.1")[:2])
    assert draft.status_code == 201, draft.text
    draft_id = draft.json()["id"]
    assert draft.json()["signed"] is False and draft.json()["template_id"] >= 1
    sign = {"signer_name": "王经理", "signature_png": SIG}
    got = client.post(f"{API}/inspections/{draft_id}/sign", json=sign, headers=who)
    assert_problem(got, 422, "items not marked")
    deadline = (T0 + timedelta(days=2)).isoformat()
    patch = {"marks": all_pass("R1.1", deadline=deadline)}
    assert client.patch(f"{API}/inspections/{draft_id}", json=patch, headers=who).status_code == 200
    for signature, why in [
        ("not base64!", "base64"),
        (base64.b64encode(b"GIF89a" + bytes(64)).decode(), "not a PNG"),
        ("data:image/svg+xml;base64," + SIG, "only a PNG"),
        (base64.b64encode(make_png(4000, 4000, raw=b"\x00")).decode(), "too many pixels"),
    ]:
        body = {"signer_name": "王经理", "signature_png": signature}
        assert_problem(
            client.post(f"{API}/inspections/{draft_id}/sign", json=body, headers=who), 422, why
        )
    signed = client.post(
        f"{API}/inspections/{draft_id}/sign",
        json={**sign, "signature_png": "data:image/png;base64," + SIG},
        headers=who,
    )
    assert signed.status_code == 200, signed.text
    view = signed.json()
    assert view["signed"] and view["signer_name"] == "王经理" and view["passed"] is False
    png = client.get(f"{API}/inspections/{draft_id}/signature", headers=sup["officer"])
    assert png.status_code == 200 and png.content == base64.b64decode(SIG)
    # signed: immutable
    assert_problem(
        client.patch(f"{API}/inspections/{draft_id}", json=patch, headers=who), 409, "signed"
    )
    assert_problem(client.post(f"{API}/inspections/{draft_id}/sign", json=sign, headers=who), 409)
    photo = client.post(
        f"{API}/inspections/{draft_id}/photos",
        content=make_png(),
        headers={**who, "Content-Type": "image/png"},
    )
    assert_problem(photo, 409)
    # a correction is a new record naming the old one
    fix = new_inspection(client, who, corrects_id=draft_id, inspected_at=at, marks=all_pass())
    assert fix.status_code == 201 and fix.json()["kind"] == "correction"
    assert client.get(f"{API}/inspections/{draft_id}", headers=who).json()["corrected_by"] == [
        fix.json()["id"]
    ]


def test_finding_runs_from_cross_to_closure_by_reinspection(
    client: TestClient, sup: dict[str, Any]
) -> None:
    who = sup["inspector"]
    sign = {"signer_name": "王经理", "signature_png": SIG}
    deadline = (T0 + timedelta(days=2)).isoformat()
    first = new_inspection(
        client, who, inspected_at=T0.isoformat(), marks=all_pass("R1.1", "R3.2", deadline=deadline)
    ).json()
    on_spot = all_pass("R3.1", fixed_on_spot=True)
    first_marks = [
        m if m["item_code"] != "R3.1" else on_spot[4]
        for m in all_pass("R1.1", "R3.2", deadline=deadline)
    ]
    client.patch(f"{API}/inspections/{first['id']}", json={"marks": first_marks}, headers=who)
    assert (
        client.post(f"{API}/inspections/{first['id']}/sign", json=sign, headers=who).status_code
        == 200
    )
    findings = client.get(f"{API}/findings", params={"site_id": "res-01"}, headers=who).json()
    by_item = {f["item_code"]: f for f in findings}
    assert {k: v["status"] for k, v in by_item.items()} == {
        "R1.1": "open",
        "R3.2": "open",
        "R3.1": "fixed_on_spot",
    }
    assert by_item["R1.1"]["overdue"] is True  # 2020: long past its deadline
    # re-inspection: R1.1 fixed (√), R3.2 still ×
    again = new_inspection(
        client,
        who,
        kind="reinspection",
        inspected_at=(T0 + timedelta(days=1)).isoformat(),
        marks=all_pass("R3.2", deadline=(T0 + timedelta(days=3)).isoformat()),
    ).json()
    assert (
        client.post(f"{API}/inspections/{again['id']}/sign", json=sign, headers=who).status_code
        == 200
    )
    closed = client.get(f"{API}/findings/{by_item['R1.1']['id']}", headers=who).json()
    assert closed["status"] == "closed" and closed["closed_by_inspection_id"] == again["id"]
    assert (
        client.get(f"{API}/findings/{by_item['R3.2']['id']}", headers=who).json()["status"]
        == "open"
    )
    open_now = client.get(f"{API}/findings", params={"status": "open"}, headers=who).json()
    assert sorted(f["inspection_id"] for f in open_now) == [first["id"], again["id"]]


def _passages(engine: Engine, cps: list[str], start: datetime, n: int) -> None:
    rows, rollups = [], {}
    for k in range(n):
        ts = start + timedelta(minutes=11 * k)
        screened = k % 4 != 0
        registered = k % 5 != 0
        cp = cps[k % len(cps)]
        rows.append(
            {
                "checkpoint_id": cp,
                "msg_id": f"sv{k}",
                "ts": ts,
                "device_ts": ts,
                "received_at": ts,
                "clock_adjusted": False,
                "direction": "in" if k % 2 else "out",
                "kind": "person",
                "registration": "registered" if registered else "unknown_person",
                "quarantined": False,
                "screened": screened,
            }
        )
        counts = rollups.setdefault((cp, cov.floor_hour(ts)), Counter())
        counts.update(
            passages=1,
            **{"persons_in" if k % 2 else "persons_out": 1},
            registered=int(registered),
            screened_persons=int(screened),
        )
    with engine.begin() as conn:
        conn.execute(insert(Passage.__table__), rows)  # type: ignore[attr-defined]
        add_rollups(conn, rollups)
        conn.execute(
            insert(DutyEvent.__table__),  # type: ignore[attr-defined]
            [
                {
                    "checkpoint_id": "cp-002",  # needs 1 on duty
                    "msg_id": f"svd{i}",
                    "ts": start + timedelta(hours=3 * i),
                    "device_ts": start + timedelta(hours=3 * i),
                    "received_at": start + timedelta(hours=3 * i),
                    "clock_adjusted": False,
                    "staff_id": "s-a",
                    "action": "on" if i % 2 == 0 else "off",
                }
                for i in range(4)
            ],
        )
        conn.execute(
            insert(DeviceStatusEvent.__table__),  # type: ignore[attr-defined]
            [
                {
                    "checkpoint_id": "cp-002",
                    "ts": start,
                    "device_ts": start,
                    "received_at": start,
                    "state": "online",
                }
            ],
        )


def test_system_verdict_equals_the_coverage_api_for_the_same_period(
    client: TestClient, sup: dict[str, Any], seeded_engine: Engine
) -> None:
    who = sup["inspector"]
    _passages(seeded_engine, ["cp-001", "cp-002", "cp-003"], T0 - timedelta(days=2), 300)
    sign = {"signer_name": "王经理", "signature_png": SIG}
    # a first signed inspection two days ago starts the next one's period
    old = new_inspection(
        client, who, inspected_at=(T0 - timedelta(days=2, minutes=20)).isoformat(), marks=all_pass()
    )
    assert (
        client.post(
            f"{API}/inspections/{old.json()['id']}/sign", json=sign, headers=who
        ).status_code
        == 200
    )
    at = T0 + timedelta(minutes=25)
    got = new_inspection(client, who, inspected_at=at.isoformat(), marks=all_pass()).json()
    start = datetime.fromisoformat(got["period_start"])
    assert start == datetime(2020, 2, 19, 0, 0, tzinfo=UTC)  # the last one's hour
    api = client.get(
        "/api/v1/metrics/coverage",
        params={"site_id": "res-01", "from": start.isoformat(), "to": at.isoformat()},
        headers=sup["viewer"],
    ).json()["total"]
    marks = {m["item_code"]: m for m in got["marks"]}
    expected = {
        "R1.2": api["staffing_coverage"],
        "R2.1": api["temperature_coverage"],
        "R2.2": api["registration_coverage"],
    }
    assert all(v is not None and 0 < v < 1 for v in expected.values()), expected
    for code, value in expected.items():
        assert marks[code]["system_value"] == value
        assert marks[code]["system_verdict"] == "fail"  # below 100 %
        assert marks[code]["disagreement"] is True  # the inspector ticked √
    assert marks["R1.1"]["system_verdict"] is None and not marks["R1.1"]["disagreement"]
    form = client.get(
        f"{API}/verdicts", params={"site_id": "res-01", "at": at.isoformat()}, headers=who
    ).json()
    assert {i["item_code"]: i["value"] for i in form["items"]} == expected


def test_roles_inspector_sees_own_viewer_sees_none(client: TestClient, sup: dict[str, Any]) -> None:
    mine = new_inspection(client, sup["inspector"], marks=[]).json()
    theirs = new_inspection(client, sup["officer"], marks=[]).json()
    listed = client.get(f"{API}/inspections", headers=sup["inspector"]).json()
    assert [i["id"] for i in listed] == [mine["id"]]
    assert_problem(client.get(f"{API}/inspections/{theirs['id']}", headers=sup["inspector"]), 404)
    assert len(client.get(f"{API}/inspections", headers=sup["officer"]).json()) == 2
    assert_problem(client.get(f"{API}/inspections", headers=sup["viewer"]), 403)
    assert_problem(new_inspection(client, sup["duty"], marks=[]), 403)
    assert_problem(client.post(f"{API}/checklists", json={}, headers=sup["inspector"]), 403)


def test_enterprises_csv_import_same_day_check_and_metrics(
    client: TestClient, sup: dict[str, Any], api_app: FastAPI
) -> None:
    tz = ZoneInfo(api_app.state.settings.timezone)
    today = datetime.now(tz).date()
    bad = client.post(
        f"{API}/enterprises",
        json={"name": "x", "credit_code": credit_code(1)[:17] + "Z", "site_id": "ind-01"},
        headers=sup["officer"],
    )
    assert_problem(bad, 422, "credit_code")
    csv_text = "name,credit_code,site_id,resumed_on\n" + "\n".join(
        f"企业{n},{credit_code(n)},ind-0{1 + n % 2},{today.isoformat() if n < 3 else ''}"
        for n in range(5)
    )
    broken = csv_text + f"\n坏行,{credit_code(9)[:-1]}0,ind-01,\n"
    report = client.post(
        f"{API}/enterprises/import",
        content=broken.encode(),
        headers={**sup["officer"], "Content-Type": "text/csv"},
    ).json()
    assert report["committed"] is False and report["errors"][0]["row"] == 7
    report = client.post(
        f"{API}/enterprises/import",
        content=csv_text.encode(),
        headers={**sup["officer"], "Content-Type": "text/csv"},
    ).json()
    assert (report["committed"], report["imported"]) == (True, 5)
    visits = client.get(f"{API}/visits", headers=sup["inspector"]).json()
    checks = [v for v in visits if v["kind"] == "resumption"]
    assert len(checks) == 3
    resumed = client.get(
        f"{API}/enterprises", params={"status": "resumed"}, headers=sup["inspector"]
    ).json()
    assert len(resumed) == 3
    sign = {"signer_name": "企业负责人", "signature_png": SIG}
    marks = [{"item_code": c, "mark": "pass"} for c in ("E1.1", "E1.2", "E2.1", "E3.1")]
    for e in resumed[:2]:
        made = client.post(
            f"{API}/inspections",
            json={
                "kind": "resumption",
                "team_id": "team-2",
                "enterprise_id": e["id"],
                "inspector": "张",
                "marks": marks,
            },
            headers=sup["inspector"],
        ).json()
        assert made["site_id"] == e["site_id"]
        assert (
            client.post(
                f"{API}/inspections/{made['id']}/sign", json=sign, headers=sup["inspector"]
            ).status_code
            == 200
        )
    m = client.get(f"{API}/metrics", headers=sup["viewer"]).json()
    assert m["enterprises"]["resumed"] == 3
    assert m["enterprises"]["checked_same_day"] == 2
    assert m["enterprises"]["pass_rate"] == 1.0
    assert m["enterprises"]["unchecked"] == [resumed[2]["id"]]
    assert {r["template_code"] for r in m["inspections"]["by_checklist"]} == {"enterprise"}
    done = client.get(f"{API}/visits", headers=sup["inspector"]).json()
    assert sum(v["inspection_id"] is not None for v in done if v["kind"] == "resumption") == 2


def test_lookback_plan_covers_every_compound_and_park_within_n_days(
    client: TestClient, sup: dict[str, Any]
) -> None:
    start = date(2020, 3, 2)
    body = {"start": start.isoformat(), "days": 5, "seed": 11}
    visits = client.post(f"{API}/plan", json=body, headers=sup["officer"]).json()
    sites = {
        s["id"]
        for s in client.get("/api/v1/sites", headers=sup["admin"]).json()
        if s["id"][:3] in ("res", "ind")
    }
    assert sorted(v["site_id"] for v in visits) == sorted(sites)
    tz = ZoneInfo("Asia/Shanghai")
    for v in visits:
        local = datetime.fromisoformat(v["planned_at"]).astimezone(tz).date()
        assert start <= local < start + timedelta(days=5)
    teams = Counter(v["team_id"] for v in visits)
    assert len(teams) == 5 and max(teams.values()) - min(teams.values()) <= 1
    again = client.post(f"{API}/plan", json=body, headers=sup["officer"]).json()
    assert [(v["site_id"], v["planned_at"]) for v in again] == [
        (v["site_id"], v["planned_at"]) for v in visits
    ]
    listed = client.get(
        f"{API}/visits",
        params={"from_day": start.isoformat(), "to_day": (start + timedelta(days=4)).isoformat()},
        headers=sup["inspector"],
    ).json()
    assert len(listed) == len(visits)  # the replan replaced the open visits


def test_new_checklist_version_via_api(client: TestClient, sup: dict[str, Any]) -> None:
    current = client.get(f"{API}/checklists", headers=sup["viewer"]).json()
    assert sorted(t["code"] for t in current) == ["enterprise", "industrial", "residential"]
    assert sum(len(t["items"]) for t in current) == 24
    ent = next(t for t in current if t["code"] == "enterprise")
    majors = [
        {
            "code": "E1",
            "text_zh": "企业防控主体责任",
            "text_en": "Duties",
            "items": [{"code": "E1.1", "text_zh": "防控方案", "text_en": "Plan"}],
        }
    ]
    body = {
        "code": "enterprise",
        "target_kind": "enterprise",
        "name": "v2",
        "name_zh": "二版",
        "majors": majors,
    }
    made = client.post(f"{API}/checklists", json=body, headers=sup["admin"])
    assert made.status_code == 201 and made.json()["version"] == 2
    versions = client.get(
        f"{API}/checklists", params={"all_versions": True}, headers=sup["viewer"]
    ).json()
    assert [t["active"] for t in versions if t["code"] == "enterprise"] == [False, True]
    assert ent["id"] != made.json()["id"]
    wrong = {**body, "target_kind": "industrial"}
    assert_problem(client.post(f"{API}/checklists", json=wrong, headers=sup["admin"]), 422)
