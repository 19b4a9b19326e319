"""Rosters through the API on both databases: CSV import of staff (with duty roles),
who may serve where and shifts; requirements; hours served; roster state; coverage by
requirement against a recount; duty from unknown ids listed, not counted."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from services.core.tables import duty_t
from tests.support.api import bearer

NOW = datetime.now(UTC).replace(microsecond=0)
H = timedelta(hours=1)
_msg = itertools.count(1)


def csv_post(client: TestClient, key: str, entity: str, body: str, mode: str = "all_or_nothing"):  # type: ignore[no-untyped-def]
    return client.post(
        f"/api/v1/registry/import/{entity}?mode={mode}",
        content=body.encode(),
        headers={**bearer(key), "content-type": "text/csv"},
    )


def duty(
    engine: Engine, cp: str, staff: str, action: str, at: datetime, unknown: bool = False
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(duty_t).values(
                checkpoint_id=cp,
                msg_id=f"rd{next(_msg)}",
                ts=at,
                device_ts=at,
                received_at=at,
                staff_id=staff,
                action=action,
                unknown_staff=unknown,
            )
        )


def test_staff_serves_and_rosters_import_with_line_numbered_errors(
    client: TestClient, api_keys: dict[str, str]
) -> None:
    admin = api_keys["admin"]
    staff = "id,name,duty_role\nr-pol,王警官,police\nr-med,李医生,medical\nr-vol,张志愿,volunteer\n"
    assert csv_post(client, admin, "staff", staff).json()["imported"] == 3
    bad = csv_post(client, admin, "staff", "id,name,duty_role\nr-x,某人,astronaut\n").json()
    assert bad["committed"] is False and bad["errors"][0]["field"] == "duty_role"

    serves = "staff_id,checkpoint_id\nr-pol,cp-001\nr-pol,cp-002\n"
    assert csv_post(client, admin, "staff_checkpoints", serves).json()["imported"] == 2
    got = client.get("/api/v1/roster/staff/r-pol/checkpoints", headers=bearer(admin)).json()
    assert got == {"checkpoint_ids": ["cp-001", "cp-002"]}

    start = "2026-03-01T23:00:00+08:00"
    end = "2026-03-02T07:00:00+08:00"
    roster = (
        "checkpoint_id,staff_id,starts_at,ends_at,label\n"
        f"cp-001,r-pol,{start},{end},night\n"
        f"cp-003,r-pol,{start},{end},night\n"  # line 3: not a checkpoint r-pol serves
        f"cp-001,r-med,{end},{start},night\n"  # line 4: ends before it starts
        f"cp-001,r-med,{start},{end},night\n"
    )
    report = csv_post(client, admin, "rosters", roster).json()
    assert report["committed"] is False
    assert [(e["row"], e["field"]) for e in report["errors"]] == [
        (3, "checkpoint_id"),
        (4, "ends_at"),
    ]
    report = csv_post(client, admin, "rosters", roster, "skip_bad_rows").json()
    assert (report["imported"], report["skipped"]) == (2, 2)
    shifts = client.get(
        "/api/v1/roster/shifts",
        params={"from": "2026-03-01T00:00:00Z", "to": "2026-03-03T00:00:00Z"},
        headers=bearer(admin),
    ).json()
    assert sorted(s["staff_id"] for s in shifts) == ["r-med", "r-pol"]
    again = client.post(
        "/api/v1/roster/shifts",
        json={"checkpoint_id": "cp-001", "staff_id": "r-pol", "starts_at": start, "ends_at": end},
        headers=bearer(admin),
    )
    assert again.status_code == 409
    viewer = client.post(
        "/api/v1/roster/shifts",
        json={"checkpoint_id": "cp-001", "staff_id": "r-vol", "starts_at": start, "ends_at": end},
        headers=bearer(api_keys["viewer"]),
    )
    assert viewer.status_code == 403
    made = client.post(
        "/api/v1/roster/shifts",
        json={"checkpoint_id": "cp-003", "staff_id": "r-vol", "starts_at": start, "ends_at": end},
        headers=bearer(admin),
    )
    assert made.status_code == 201
    window = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-03T00:00:00Z"}
    listed = client.get("/api/v1/roster/shifts", params=window, headers=bearer(admin)).json()
    assert sorted(s["staff_id"] for s in listed) == ["r-med", "r-pol", "r-vol"]
    # the duty key covers cp-001 and cp-002 only
    own = client.get("/api/v1/roster/shifts", params=window, headers=bearer(api_keys["duty"]))
    assert sorted(s["checkpoint_id"] for s in own.json()) == ["cp-001", "cp-001"]


def test_requirements_defaults_and_validation(client: TestClient, api_keys: dict[str, str]) -> None:
    admin = bearer(api_keys["admin"])
    made = client.post("/api/v1/roster/requirements/defaults", headers=admin)
    assert made.status_code == 201
    night = next(r for r in made.json() if r["label"] == "night")
    assert (night["start_minute"], night["end_minute"], night["min_on_duty"]) == (1380, 360, 3)
    assert night["roles"] == ["police", "medical", "community"]
    assert client.post("/api/v1/roster/requirements/defaults", headers=admin).status_code == 409
    bad = client.post(
        "/api/v1/roster/requirements",
        json={"start_minute": 0, "end_minute": 60, "min_on_duty": 1, "roles": ["wizard"]},
        headers=admin,
    )
    assert bad.status_code == 422
    out_of_range = client.post(
        "/api/v1/roster/requirements",
        json={"start_minute": 0, "end_minute": 6000, "min_on_duty": 1},
        headers=admin,
    )
    assert out_of_range.status_code == 422
    too_many = client.post(
        "/api/v1/roster/requirements",
        json={"start_minute": 0, "end_minute": 60, "min_on_duty": 50, "roles": ["police"] * 11},
        headers=admin,
    )
    assert too_many.status_code == 422
    own = client.post(
        "/api/v1/roster/requirements",
        json={
            "checkpoint_id": "cp-002",
            "label": "gate",
            "start_minute": 0,
            "end_minute": 0,
            "min_on_duty": 2,
            "roles": ["security"],
        },
        headers=admin,
    )
    assert own.status_code == 201
    changed = client.put(
        f"/api/v1/roster/requirements/{own.json()['id']}",
        json={**own.json(), "min_on_duty": 1},
        headers=admin,
    )
    assert changed.status_code == 200 and changed.json()["min_on_duty"] == 1


def test_hours_state_coverage_and_unknown_duty(
    client: TestClient, api_keys: dict[str, str], seeded_engine: Engine
) -> None:
    admin = bearer(api_keys["admin"])
    client.patch("/api/v1/staff/st-001-1", json={"duty_role": "police"}, headers=admin)
    client.patch("/api/v1/staff/st-001-2", json={"duty_role": "volunteer"}, headers=admin)
    start = NOW - 4 * H
    duty(seeded_engine, "cp-001", "st-001-1", "on", start - H)  # on before the window
    duty(seeded_engine, "cp-001", "st-001-1", "off", start + 2 * H)
    duty(seeded_engine, "cp-001", "st-001-2", "on", start + H)
    duty(seeded_engine, "cp-001", "ghost-1", "on", start, unknown=True)
    window = {"from": start.isoformat(), "to": NOW.isoformat()}

    hours = client.get("/api/v1/roster/hours", params=window, headers=admin).json()
    got = {(p["staff_id"], p["duty_role"]): p["hours"] for p in hours["people"]}
    assert got == {("st-001-1", "police"): 2.0, ("st-001-2", "volunteer"): 3.0}
    assert hours["by_role"] == {"police": 2.0, "volunteer": 3.0}

    # cp-001 needs 2 on duty (demo min_staff) and no requirement rows exist: two were on
    # together from +1 h to +2 h; someone was there the whole 4 hours
    cov = client.get(
        "/api/v1/roster/coverage", params={**window, "checkpoint_id": "cp-001"}, headers=admin
    ).json()
    (one,) = cov["checkpoints"]
    assert (one["required_minutes"], one["met_minutes"], one["anyone_minutes"]) == (240, 60, 240)

    state = {
        s["checkpoint_id"]: s for s in client.get("/api/v1/roster/state", headers=admin).json()
    }
    assert state["cp-001"]["on_duty"] == ["st-001-2"]
    assert state["cp-001"]["met"] is False and state["cp-001"]["need"] == 2

    unknown = client.get("/api/v1/roster/unknown-duty", headers=admin).json()
    assert [(u["staff_id"], u["checkpoint_id"]) for u in unknown] == [("ghost-1", "cp-001")]
    bad_window = client.get(
        "/api/v1/roster/hours",
        params={"from": NOW.isoformat(), "to": start.isoformat()},
        headers=admin,
    )
    assert bad_window.status_code == 422
