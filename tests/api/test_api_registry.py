"""Registry CRUD, bulk CSV import with per-row errors, contact tracing (audited)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, text

from services.core.demo import DemoCommunity, make_resident_id
from services.core.models import Passage
from tests.support.api import assert_problem, bearer

NEW_ID = "11010519491231002X"


def test_people_id_numbers_are_hashed_never_returned(
    client: TestClient,
    api_keys: dict[str, str],
    seeded_engine: Engine,
) -> None:
    admin = bearer(api_keys["admin"])
    body = {"name": "张伟", "id_number": NEW_ID, "site_id": "res-01", "unit": "1-1-101"}
    created = client.post("/api/v1/people", json=body, headers=admin)
    assert created.status_code == 201, created.text
    person = created.json()
    assert person["id_masked"] == "1101**********002X" and NEW_ID not in created.text
    assert_problem(client.post("/api/v1/people", json=body, headers=admin), 409, "already")
    bad = client.post(
        "/api/v1/people", json={**body, "id_number": "110105194912310021"}, headers=admin
    )
    assert assert_problem(bad, 422)["errors"][0]["field"] == "body.id_number"
    assert "110105194912310021" not in bad.text
    found = client.post(
        "/api/v1/people/lookup", json={"id_number": NEW_ID}, headers=bearer(api_keys["officer"])
    )
    assert found.json()["id"] == person["id"]
    patched = client.patch(
        f"/api/v1/people/{person['id']}", json={"unit": "2-2-202"}, headers=admin
    )
    assert patched.json()["unit"] == "2-2-202"
    with seeded_engine.connect() as conn:
        dump = json.dumps(
            [list(r) for r in conn.execute(text("SELECT * FROM person"))], default=str
        )
        audit = json.dumps(
            [list(r) for r in conn.execute(text("SELECT * FROM audit_log"))], default=str
        )
    assert NEW_ID not in dump and NEW_ID not in audit


def test_passes_vehicles_quarantine_staff_and_checkpoints(
    client: TestClient,
    api_keys: dict[str, str],
) -> None:
    admin = bearer(api_keys["admin"])
    issued = client.post(
        "/api/v1/passes",
        json={"person_id": 1, "valid_from": "2020-02-01T00:00:00+08:00"},
        headers=admin,
    )
    assert issued.status_code == 201, issued.text
    code = issued.json()["code"]
    assert code.startswith("QR")
    revoked = client.post(
        f"/api/v1/passes/{issued.json()['id']}/revoke", json={"reason": "lost"}, headers=admin
    )
    assert revoked.json()["revoked_reason"] == "lost"
    assert_problem(
        client.post(
            f"/api/v1/passes/{issued.json()['id']}/revoke", json={"reason": "x"}, headers=admin
        ),
        409,
    )
    bad = client.post(
        "/api/v1/passes",
        json={"person_id": 999999, "valid_from": "2020-02-01T00:00:00Z"},
        headers=admin,
    )
    assert assert_problem(bad, 422)["errors"][0]["field"] == "body.person_id"

    vehicle = client.post(
        "/api/v1/vehicles", json={"plate": "粤B 123-45", "owner_person_id": 1}, headers=admin
    )
    assert vehicle.json()["plate"] == "粤B12345"
    assert_problem(client.post("/api/v1/vehicles", json={"plate": "粤B12345"}, headers=admin), 409)
    assert (
        client.get("/api/v1/vehicles?plate=粤B12345", headers=admin).json()[0]["id"]
        == (vehicle.json()["id"])
    )

    q = client.post(
        "/api/v1/quarantines",
        json={"person_id": 2, "starts_at": "2020-02-01T00:00:00Z"},
        headers=admin,
    )
    assert q.status_code == 201
    active = client.get("/api/v1/quarantines?person_id=2", headers=admin).json()
    assert [row["id"] for row in active] == [q.json()["id"]]
    assert client.post(f"/api/v1/quarantines/{q.json()['id']}/lift", headers=admin).json()[
        "lifted_at"
    ]
    assert client.get("/api/v1/quarantines?person_id=2", headers=admin).json() == []

    staff = client.post(
        "/api/v1/staff", json={"id": "st-new", "name": "李娜", "site_id": "res-01"}, headers=admin
    )
    assert staff.status_code == 201
    assert (
        client.patch("/api/v1/staff/st-new", json={"active": False}, headers=admin).json()["active"]
        is False
    )
    cp = client.post(
        "/api/v1/checkpoints",
        json={"id": "cp-200", "site_id": "res-01", "name": "Back gate"},
        headers=admin,
    )
    assert cp.status_code == 201, cp.text
    assert (
        client.patch("/api/v1/checkpoints/cp-200", json={"min_staff": 3}, headers=admin).json()[
            "min_staff"
        ]
        == 3
    )
    board = client.get("/api/v1/checkpoints/cp-200", headers=bearer(api_keys["viewer"])).json()
    assert board["checkpoint"]["device_state"] == "unknown"
    assert_problem(
        client.patch("/api/v1/checkpoints/cp-404", json={"min_staff": 1}, headers=admin), 404
    )


def test_checkpoint_service_period_is_set_by_api_and_csv(
    client: TestClient, api_keys: dict[str, str]
) -> None:
    admin = bearer(api_keys["admin"])
    since = "2026-11-01T00:00:00+08:00"
    made = client.post(
        "/api/v1/checkpoints",
        json={"id": "cp-201", "site_id": "res-01", "name": "Side gate", "commissioned_at": since},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    assert made.json()["commissioned_at"] == "2026-10-31T16:00:00Z"
    assert made.json()["decommissioned_at"] is None
    before = {"decommissioned_at": "2026-10-01T00:00:00Z"}
    assert_problem(client.patch("/api/v1/checkpoints/cp-201", json=before, headers=admin), 422)
    closed = client.patch(
        "/api/v1/checkpoints/cp-201",
        json={"decommissioned_at": "2026-11-20T00:00:00Z"},
        headers=admin,
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["decommissioned_at"] == "2026-11-20T00:00:00Z"
    csv = (
        "id,site_id,name,commissioned_at,decommissioned_at\n"
        "cp-202,res-01,Gate A,2026-11-01T00:00:00Z,\n"
        "cp-203,res-01,Gate B,,2026-11-02T00:00:00Z\n"
    )
    imported = client.post(
        "/api/v1/registry/import/checkpoints",
        content=csv,
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    listed = {  # an empty PATCH answers with the stored checkpoint
        cp: client.patch(f"/api/v1/checkpoints/{cp}", json={}, headers=admin).json()
        for cp in ("cp-202", "cp-203")
    }
    assert listed["cp-202"]["commissioned_at"] == "2026-11-01T00:00:00Z"
    assert listed["cp-203"]["commissioned_at"] is None
    assert listed["cp-203"]["decommissioned_at"] == "2026-11-02T00:00:00Z"


def test_csv_import_reports_bad_rows_precisely(
    client: TestClient,
    api_keys: dict[str, str],
    small_community: DemoCommunity,
) -> None:
    import random

    rng = random.Random(1)
    good1, good2 = make_resident_id(rng), make_resident_id(rng)
    existing = small_community.people[0].id_number
    csv_text = (
        "name,id_number,site_id,unit,resident\n"
        f"王芳,{good1},res-01,1-101,true\n"  # line 2: fine
        "李强,110105194912310021,res-01,,true\n"  # line 3: bad check digit
        f"赵敏,{good2},nowhere,,true\n"  # line 4: unknown site
        f"周杰,{existing},,,\n"  # line 5: already registered
        f",{good2},res-02,,maybe\n"  # line 6: no name, bad bool
    )
    admin = {**bearer(api_keys["admin"]), "Content-Type": "text/csv"}
    report = client.post(
        "/api/v1/registry/import/people", content=csv_text.encode(), headers=admin
    ).json()
    assert report["committed"] is False and report["imported"] == 0 and report["rows"] == 5
    errors = {(e["row"], e["field"]) for e in report["errors"]}
    assert errors == {
        (3, "id_number"),
        (4, "site_id"),
        (5, "id_number"),
        (6, "name"),
        (6, "resident"),
    }
    assert all(good1 not in e["message"] and existing not in e["message"] for e in report["errors"])
    assert (
        client.post(
            "/api/v1/people/lookup", json={"id_number": good1}, headers=bearer(api_keys["admin"])
        ).status_code
        == 404
    )  # nothing written

    report = client.post(
        "/api/v1/registry/import/people?mode=skip_bad_rows",
        content=csv_text.encode(),
        headers=admin,
    ).json()
    assert report["committed"] is True and report["imported"] == 1 and report["skipped"] == 4
    assert (
        client.post(
            "/api/v1/people/lookup", json={"id_number": good1}, headers=bearer(api_keys["admin"])
        ).status_code
        == 200
    )

    header = client.post(
        "/api/v1/registry/import/passes", content=b"code,colour\nQR1,red\n", headers=admin
    ).json()
    assert {(e["row"], e["field"], e["message"]) for e in header["errors"]} == {
        (1, "colour", "unknown column"),
        (1, "valid_from", "required column missing"),
    }
    passes = client.post(
        "/api/v1/registry/import/passes",
        content=f"id_number,code,valid_from\n{good1},QR-NEW-1,2020-02-01T00:00:00+08:00\n"
        f"{good2},QR-NEW-2,2020-02-01\n".encode(),
        headers=admin,
    ).json()
    assert [(e["row"], e["field"]) for e in passes["errors"]] == [(3, "valid_from")]
    assert_problem(
        client.post("/api/v1/registry/import/people", content=b"\xff\xfe", headers=admin),
        422,
        "UTF-8",
    )
    assert_problem(
        client.post(
            "/api/v1/registry/import/people", json={"a": 1}, headers=bearer(api_keys["admin"])
        ),
        415,
    )
    assert client.get(
        "/api/v1/audit?action=registry.import", headers=bearer(api_keys["admin"])
    ).json()["items"][0]["resource"] == ("registry/people")


def test_contact_tracing_finds_nearby_people_masked_and_is_audited(
    client: TestClient,
    api_keys: dict[str, str],
    seeded_engine: Engine,
    small_community: DemoCommunity,
) -> None:
    from services.core.identity import hash_id, mask_id
    from tests.support.env import TEST_SECRET

    t0 = datetime(2020, 2, 3, 9, 0, tzinfo=UTC)
    people = small_community.people[:4]

    def passage(n: int, person_index: int, cp: str, minutes: float) -> dict[str, object]:
        raw = people[person_index].id_number
        ts = t0 + timedelta(minutes=minutes)
        return {
            "checkpoint_id": cp,
            "msg_id": f"m{n}",
            "ts": ts,
            "device_ts": ts,
            "received_at": ts,
            "clock_adjusted": False,
            "direction": "in",
            "kind": "person",
            "id_type": "resident_id",
            "id_masked": mask_id(raw),
            "id_hash": hash_id(TEST_SECRET, raw),
            "person_id": person_index + 1,
            "registration": "registered",
            "quarantined": False,
            "screened": True,
        }

    with seeded_engine.begin() as conn:
        conn.execute(
            insert(Passage.__table__),
            [  # type: ignore[attr-defined]
                passage(1, 0, "cp-001", 0),  # the traced person
                passage(2, 1, "cp-001", 10),  # within 15 min: a contact
                passage(3, 2, "cp-001", 40),  # too late
                passage(4, 3, "cp-002", 1),  # another checkpoint
                passage(5, 0, "cp-002", 120),  # traced again, alone
            ],
        )
    query = {
        "id_number": people[0].id_number,
        "from": "2020-02-03T00:00:00Z",
        "to": "2020-02-04T00:00:00Z",
        "window_minutes": 15,
    }
    result = client.post(
        "/api/v1/tracing/contacts", json=query, headers=bearer(api_keys["officer"])
    )
    assert result.status_code == 200, result.text
    body = result.json()
    assert [p["checkpoint_id"] for p in body["passages"]] == ["cp-001", "cp-002"]
    assert [(c["person_id"], c["delta_s"]) for c in body["contacts"]] == [(2, 600.0)]
    assert body["contacts"][0]["id_masked"] == mask_id(people[1].id_number)
    assert people[1].id_number not in result.text and people[0].id_number not in result.text
    audit = client.get(
        "/api/v1/audit?action=tracing.query", headers=bearer(api_keys["admin"])
    ).json()["items"]
    assert len(audit) == 1 and people[0].id_number not in json.dumps(audit)
    assert json.loads(audit[0]["detail"])["contacts"] == 1


def test_ids_chosen_by_an_admin_are_slugs(client: TestClient, api_keys: dict[str, str]) -> None:
    """Site, checkpoint and staff ids end up in MQTT topics, URLs and CSV files: hostile
    ones (spaces, slashes, wildcards, quotes) are refused by the API and the CSV import."""
    admin = bearer(api_keys["admin"])
    for bad in ("a b!", "cp/001", "cp+#", "x'--", "", "a" * 65):
        assert_problem(
            client.post("/api/v1/sites", json={"id": bad, "name": "x"}, headers=admin), 422
        )
        assert_problem(
            client.post(
                "/api/v1/checkpoints",
                json={"id": bad, "site_id": "res-01", "name": "x"},
                headers=admin,
            ),
            422,
        )
        assert_problem(
            client.post("/api/v1/staff", json={"id": bad, "name": "x"}, headers=admin), 422
        )
    assert (
        client.post(
            "/api/v1/sites", json={"id": "res-99_b", "name": "x"}, headers=admin
        ).status_code
        == 201
    )
    report = client.post(
        "/api/v1/registry/import/staff",
        content="id,name\nst 9,王芳\n".encode(),
        headers={**admin, "Content-Type": "text/csv"},
    ).json()
    assert report["imported"] == 0 and {e["field"] for e in report["errors"]} == {"id"}
