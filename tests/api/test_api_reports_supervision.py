"""The daily report's supervision and roster parts: signed inspections and findings,
open and overdue rectifications at the day's end, enterprises resumed and checked the
same day, hours served per person and role, and fever dispositions on the fever lines;
drafts, other days and closed findings left out. XLSX: credit codes as text."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import Engine, insert, select, update
from sqlmodel import Session

from services.alerts.service import AlertService
from services.core.models import (
    Enterprise,
    FeverCase,
    Finding,
    Inspection,
    SupervisionTeam,
)
from services.core.models.supervision import ChecklistTemplate
from services.core.report_model import day_window
from services.core.roster_report import hours_by_role, hours_served
from services.core.supervision_templates import load_default_templates
from services.core.tables import alert_t, duty_t, staff_t, table_of
from tests.support.alerts import Clock, add_reading
from tests.support.api import bearer

DAY = date(2020, 2, 10)
START, END = day_window(DAY, "Asia/Shanghai")
CODE = "91440300MA5G0KUF4X"


def at(hours: float) -> datetime:
    """`hours` after the day's local midnight (negative: the day before)."""
    return START + timedelta(hours=hours)


def rows(engine: Engine, model: Any, values: list[dict[str, Any]]) -> list[int]:
    with engine.begin() as conn:
        return [
            conn.execute(insert(table_of(model)).values(v)).inserted_primary_key[0] for v in values
        ]


def seed_supervision(engine: Engine) -> None:
    with Session(engine) as session:
        load_default_templates(session)
        session.commit()
        template = session.exec(select(ChecklistTemplate)).scalars().first()  # type: ignore[call-overload]
        template_id = template.id
    rows(engine, SupervisionTeam, [{"id": "team-report", "name": "Team 1", "active": True}])
    resumed = {"status": "resumed", "resumed_on": DAY}
    e1, e2, _e3 = rows(
        engine,
        Enterprise,
        [
            {**resumed, "name": "甲", "credit_code": CODE, "site_id": "res-01"},
            {**resumed, "name": "乙", "credit_code": "0" * 18, "site_id": "res-02"},
            {**resumed, "name": "丙", "credit_code": "1" * 18, "site_id": "res-01",
             "resumed_on": DAY - timedelta(days=1)},
        ],
    )  # fmt: skip
    base = {"team_id": "team-report", "template_id": template_id, "inspector": "王"}
    signed = {"signer_name": "李", "created_at": at(0)}
    i1, _i2, _i3, i4 = rows(
        engine,
        Inspection,
        [
            {**base, **signed, "kind": "resumption", "site_id": "res-01", "enterprise_id": e1,
             "inspected_at": at(10), "passed": False, "signed_at": at(10.5)},
            {**base, **signed, "kind": "lookback", "site_id": "res-01",
             "inspected_at": at(14), "passed": True, "signed_at": at(14.2)},
            {**base, "kind": "lookback", "site_id": "res-02", "inspected_at": at(15),
             "created_at": at(0)},  # a draft: not counted
            {**base, **signed, "kind": "lookback", "site_id": "res-02",
             "inspected_at": at(-20), "passed": False, "signed_at": at(-20)},  # the day before
        ],
    )  # fmt: skip
    finding = {"template_code": "R", "reason": "no notice posted", "created_at": at(0)}
    rows(
        engine,
        Finding,
        [
            {**finding, "inspection_id": i1, "item_code": "E1.1", "site_id": "res-01",
             "status": "open", "deadline": at(48)},
            {**finding, "inspection_id": i1, "item_code": "E1.2", "site_id": "res-01",
             "status": "fixed_on_spot"},
            {**finding, "inspection_id": i4, "item_code": "R1.1", "site_id": "res-02",
             "status": "open", "deadline": at(12)},  # overdue at the day's end
            {**finding, "inspection_id": i4, "item_code": "R1.2", "site_id": "res-02",
             "status": "closed", "deadline": at(12), "closed_at": at(9)},  # closed in the day
        ],
    )  # fmt: skip
    assert e2


def seed_roster(engine: Engine, make_settings: Any) -> int:
    with engine.connect() as conn:
        staff = conn.execute(select(staff_t.c.id).order_by(staff_t.c.id).limit(2)).scalars().all()
    duty = {"checkpoint_id": "cp-001", "clock_adjusted": False}
    with engine.begin() as conn:
        for n, (staff_id, action, hours) in enumerate(
            [(staff[0], "on", 1), (staff[0], "off", 9), (staff[1], "on", 20), (staff[1], "off", 30)]
        ):
            ts = at(hours)
            conn.execute(
                insert(duty_t).values(
                    **duty, msg_id=f"d{n}", staff_id=staff_id, action=action, ts=ts,
                    device_ts=ts, received_at=ts,
                )
            )  # fmt: skip
    clock = Clock(at(3))
    add_reading(engine, cp="cp-001", temp_c=38.6, ts=clock.now)
    AlertService(make_settings(), engine, clock=clock).process()
    with engine.connect() as conn:
        alert_id = conn.execute(select(alert_t.c.id).where(alert_t.c.type == "fever")).scalar_one()
    fever_case = table_of(FeverCase)
    with engine.begin() as conn:  # the alert processor opened the case; it is decided
        conn.execute(
            update(fever_case)
            .where(fever_case.c.alert_id == alert_id)
            .values(disposition="sent_to_fever_clinic", decided_by=staff[0], decided_at=at(3.5))
        )
    return int(alert_id)


def test_supervision_and_roster_parts_of_the_report(
    seeded_engine: Engine, make_settings: Any, client: TestClient, api_keys: dict[str, str]
) -> None:
    seed_supervision(seeded_engine)
    alert_id = seed_roster(seeded_engine, make_settings)
    officer = bearer(api_keys["officer"])
    report = client.get(
        "/api/v1/reports/daily", params={"date": DAY.isoformat()}, headers=officer
    ).json()
    sites = {s["site_id"]: s["figures"] for s in report["sites"]}
    roster_figures = {"hours_served", "required_minutes", "met_minutes"}
    assert {k: v for k, v in sites["res-01"].items() if k not in roster_figures} == {
        "inspections": 2,
        "inspections_passed": 1,
        "findings": 2,
        "open_rectifications": 1,
        "overdue_rectifications": 0,
        "enterprises_resumed": 1,
        "checked_same_day": 1,
    }
    res02 = sites["res-02"]
    assert (res02["inspections"], res02["findings"], res02["open_rectifications"]) == (0, 0, 1)
    assert (res02["overdue_rectifications"], res02["enterprises_resumed"]) == (1, 1)
    assert res02["checked_same_day"] == 0
    community = report["community"]["figures"]
    assert community["inspections"] == 2 and community["open_rectifications"] == 2
    assert community["enterprises_resumed"] == 2 and community["checked_same_day"] == 1
    # hours served: the first person's 8 h, the second's 4 h up to the day's end
    with seeded_engine.connect() as conn:
        served = hours_served(conn, START, END)
        by_role = hours_by_role(served)
    assert sum(r.minutes for r in served) == 12 * 60
    assert community["hours_served"] == 12 and sites["res-01"]["hours_served"] == 12
    sections = {s["key"]: s for s in report["sections"]}
    assert sorted(r[0] for r in sections["hours"]["rows"]) == sorted(r.staff_id for r in served)
    assert dict(sections["hours_by_role"]["rows"]) == {k: round(v, 2) for k, v in by_role.items()}
    assert [r[2] for r in sections["enterprises"]["rows"]] == [CODE, "0" * 18]
    # the supervision API's rows, filtered to the day
    signed = client.get(
        "/api/v1/supervision/inspections", params={"signed": "true", "limit": 500}, headers=officer
    ).json()
    assert isinstance(signed, list), signed
    in_day = [i for i in signed if START <= datetime.fromisoformat(i["inspected_at"]) < END]
    assert sorted(r[0] for r in sections["inspections"]["rows"]) == sorted(
        str(i["id"]) for i in in_day
    )
    assert len(in_day) == 2
    still_open = client.get(
        "/api/v1/supervision/findings", params={"status": "open"}, headers=officer
    ).json()
    assert community["open_rectifications"] == len(still_open)
    assert sorted(r[3] for r in sections["findings"]["rows"]) == ["E1.1", "E1.2", "R1.1"]
    fever = next(line for line in report["alerts"] if line["id"] == alert_id)
    assert fever["disposition"] == "sent_to_fever_clinic"
    (case,) = sections["fever_dispositions"]["rows"]
    assert case[0] == str(alert_id) and case[-1] == 30.0  # minutes from fever to decision

    xlsx = client.get(
        "/api/v1/reports/daily",
        params={"date": DAY.isoformat(), "format": "xlsx"},
        headers=officer,
    )
    book = load_workbook(io.BytesIO(xlsx.content))
    for name in ("督查记录", "问题整改", "复工企业", "值守时长", "各岗位时长", "发热处置"):
        assert name in book.sheetnames
    enterprises = book["复工企业"]
    assert enterprises["C1"].value == "统一社会信用代码"
    zeros = enterprises["C3"]
    assert zeros.value == "0" * 18 and zeros.data_type == "s" and zeros.number_format == "@"
    fevers = book["发热处置"]
    assert fevers["C2"].value == datetime(2020, 2, 10, 3, 0)  # local, naive
    assert fevers["C2"].is_date and START.astimezone(UTC).hour == 16
