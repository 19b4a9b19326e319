"""Need-to-know on reads, as each role sees the data: masked IDs cut to their last four
characters below officer, duty keys limited to their own checkpoints' personal data
(aggregates stay community-wide), and bulk reads of personal data audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from services.alerts.event_processor import passage_fact
from services.alerts.event_rules import Finding
from services.alerts.store import raise_alert
from services.api.main import create_app
from services.core.db import utcnow
from services.core.models.alerts import AlertType
from services.core.tables import passage_t, reading_t
from tests.support.api import assert_problem, bearer, export_rows

LONG = "4403**********123X"
SHORT = "**************123X"
T0 = datetime(2020, 2, 5, 8, 0, tzinfo=UTC)


def seed_rows(engine: Engine) -> int:
    passages = [
        {
            "checkpoint_id": cp,
            "msg_id": f"{cp}-{n}",
            "ts": T0 + timedelta(minutes=n),
            "device_ts": T0 + timedelta(minutes=n),
            "received_at": T0 + timedelta(minutes=n),
            "clock_adjusted": False,
            "direction": "in",
            "kind": "person",
            "registration": "registered",
            "quarantined": cp == "cp-050",
            "screened": True,
            "id_masked": LONG,
        }
        for n, cp in enumerate(["cp-001", "cp-050", "cp-050"])
    ]
    readings = [
        {
            "checkpoint_id": cp,
            "msg_id": f"r-{cp}",
            "ts": T0,
            "device_ts": T0,
            "received_at": T0,
            "clock_adjusted": False,
            "temp_c": 38.2,
            "direction": "in",
            "fever": True,
        }
        for cp in ("cp-001", "cp-050")
    ]
    finding = Finding(
        AlertType.FEVER, "cp-050", "res-01", "p:9", "Fever", {"id_masked": LONG, "temp_c": 38.2}
    )
    with engine.begin() as conn:
        conn.execute(insert(passage_t), passages)
        conn.execute(insert(reading_t), readings)
        raised = raise_alert(conn, finding, utcnow(), timedelta(minutes=2))
    assert raised is not None
    return raised.alert_id


def test_masks_scope_and_audit_per_role(
    client: TestClient, api_keys: dict[str, str], seeded_engine: Engine
) -> None:
    alert_id = seed_rows(seeded_engine)
    get = lambda role, path: client.get(path, headers=bearer(api_keys[role]))  # noqa: E731

    for role, expected in (("viewer", SHORT), ("duty", SHORT), ("officer", LONG), ("admin", LONG)):
        items = get(role, "/api/v1/passages").json()["items"]
        assert items and {p["id_masked"] for p in items} == {expected}, role
        rows = export_rows(get(role, "/api/v1/passages/export.csv"))
        assert {r["id_masked"] for r in rows} == {expected}, role

    # duty (cp-001, cp-002): personal-data rows of its own checkpoints only
    assert {p["checkpoint_id"] for p in get("duty", "/api/v1/passages").json()["items"]} == {
        "cp-001"
    }
    assert len(export_rows(get("duty", "/api/v1/passages/export.csv"))) == 1
    assert {r["checkpoint_id"] for r in get("duty", "/api/v1/readings").json()["items"]} == {
        "cp-001"
    }
    assert len(export_rows(get("duty", "/api/v1/readings/export.csv"))) == 1
    assert get("duty", "/api/v1/alerts").json()["items"] == []
    assert_problem(get("duty", f"/api/v1/alerts/{alert_id}"), 403, "does not cover that checkpoint")
    other = get("duty", "/api/v1/checkpoints/cp-050").json()
    assert other["checkpoint"]["id"] == "cp-050" and other["recent_passages"] == []
    own = get("duty", "/api/v1/checkpoints/cp-001").json()
    assert [p["id_masked"] for p in own["recent_passages"]] == [SHORT]
    assert len(get("duty", "/api/v1/checkpoints").json()["checkpoints"]) == 102  # aggregate
    # the others read everything; alert details masked like rows
    assert len(get("viewer", "/api/v1/passages").json()["items"]) == 3
    assert get("viewer", f"/api/v1/alerts/{alert_id}").json()["details"]["id_masked"] == SHORT
    assert get("officer", f"/api/v1/alerts/{alert_id}").json()["details"]["id_masked"] == LONG
    listed = get("viewer", "/api/v1/alerts").json()["items"]
    assert [a["details"]["id_masked"] for a in listed] == [SHORT]

    # bulk reads of personal data leave a record
    get("officer", "/api/v1/people?limit=5")
    audit = get("admin", "/api/v1/audit?limit=200").json()["items"]
    actions = {(e["action"], e["role"]) for e in audit}
    assert {("passages.export", "viewer"), ("passages.export", "duty")} <= actions
    assert {("readings.export", "duty"), ("people.list", "officer")} <= actions

    # LIKE wildcards in the name filter are literal
    assert get("officer", "/api/v1/people?name=%25").json()["items"] == []
    assert get("officer", "/api/v1/people?name=_").json()["items"] == []


def test_alerts_carry_the_last_four_characters_only() -> None:
    """What alerts store is what MQTT handhelds and webhooks receive."""
    row = SimpleNamespace(
        id=1,
        checkpoint_id="cp-001",
        site_id="res-01",
        ts=T0,
        received_at=T0,
        direction="in",
        kind="person",
        registration="registered",
        quarantined=True,
        screened=True,
        clock_adjusted=False,
        id_hash="h",
        id_masked=LONG,
        plate=None,
        msg_id="m1",
    )
    assert passage_fact(row).id_masked == SHORT


def test_each_record_class_shows_when_it_is_deleted(
    seeded_engine: Engine, make_settings: Any, api_keys: dict[str, str]
) -> None:
    """`GET /privacy/retention`: the rule per table, and for the classes deleted by age
    the oldest row kept and the date it becomes due, following CPM_RETENTION_DAYS."""
    seed_rows(seeded_engine)  # passages and readings at T0
    app = create_app(make_settings(retention_days=14))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert_problem(client.get("/api/v1/privacy/retention"), 401)
        answer = client.get("/api/v1/privacy/retention", headers=bearer(api_keys["duty"]))
        assert answer.status_code == 200, answer.text
    policy = answer.json()
    assert policy["retention_days"] == 14
    by_class = {c["record_class"]: c for c in policy["classes"]}
    assert {"passage", "reading", "dead_letter", "person", "alert", "audit_log"} <= set(by_class)
    passage = by_class["passage"]
    assert passage["personal_data"] and passage["kept_days"] == 14
    oldest = datetime.fromisoformat(passage["oldest_at"])
    assert oldest == T0
    assert datetime.fromisoformat(passage["oldest_deleted_after"]) == T0 + timedelta(days=14)
    assert by_class["dead_letter"]["oldest_at"] is None  # none stored
    assert by_class["person"]["kept_days"] is None and "purge" in by_class["person"]["rule"]
    assert not by_class["coverage_rollup"]["personal_data"]
    due = datetime.fromisoformat(policy["deletes_before"])
    assert abs(due - (utcnow() - timedelta(days=14))) < timedelta(hours=1)
