"""Alerts (list, acknowledge with duty scope, resolve), silences, webhook routes, the
SSE feed over a real uvicorn server; the board, passages paging and CSV, dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from services.alerts.event_rules import Finding
from services.alerts.store import raise_alert
from services.core.db import utcnow
from services.core.models import DeadLetter, Passage
from services.core.models.alerts import AlertType
from tests.support.api import assert_problem, bearer, export_rows


def open_alert(
    engine: Engine, cp: str, kind: AlertType = AlertType.FEVER, subject: str = ""
) -> int:
    finding = Finding(
        type=kind,
        checkpoint_id=cp,
        site_id="res-01",
        subject=subject or cp,
        summary=f"{kind} at {cp}",
    )
    with engine.begin() as conn:
        raised = raise_alert(conn, finding, utcnow(), timedelta(minutes=2))
    assert raised is not None
    return raised.alert_id


def test_alert_lifecycle_with_roles_and_duty_scope(
    client: TestClient,
    api_keys: dict[str, str],
    seeded_engine: Engine,
) -> None:
    here = open_alert(seeded_engine, "cp-001")
    there = open_alert(seeded_engine, "cp-050", AlertType.DEVICE_OFFLINE)
    duty = bearer(api_keys["duty"])
    listed = client.get("/api/v1/alerts?status=active", headers=bearer(api_keys["viewer"])).json()
    assert {a["id"] for a in listed["items"]} == {here, there}
    only = client.get("/api/v1/alerts?severity=critical", headers=duty).json()["items"]
    assert [a["id"] for a in only] == [here]

    assert_problem(
        client.post(f"/api/v1/alerts/{there}/acknowledge", json={}, headers=duty), 403, "cp-050"
    )
    assert_problem(
        client.post(
            f"/api/v1/alerts/{here}/acknowledge", json={}, headers=bearer(api_keys["viewer"])
        ),
        403,
    )
    acked = client.post(f"/api/v1/alerts/{here}/acknowledge", json={"note": "on it"}, headers=duty)
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged"
    assert_problem(client.post(f"/api/v1/alerts/{here}/acknowledge", json={}, headers=duty), 409)
    assert_problem(
        client.post(f"/api/v1/alerts/{here}/resolve", json={"outcome": "x"}, headers=duty), 403
    )
    resolved = client.post(
        f"/api/v1/alerts/{here}/resolve",
        json={"outcome": "sent_to_fever_clinic", "note": "38.1 again", "decided_by": "st-001-1"},
        headers=bearer(api_keys["officer"]),
    )
    assert resolved.json()["status"] == "resolved" and resolved.json()["outcome"] == (
        "sent_to_fever_clinic"
    )
    detail = client.get(f"/api/v1/alerts/{here}", headers=duty).json()
    assert [h["action"] for h in detail["history"]] == ["opened", "acknowledged", "resolved"]
    assert_problem(
        client.post(
            "/api/v1/alerts/999999/acknowledge", json={}, headers=bearer(api_keys["officer"])
        ),
        404,
    )
    actions = [
        e["action"]
        for e in client.get("/api/v1/audit", headers=bearer(api_keys["admin"])).json()["items"]
    ]
    assert "alert.acknowledge" in actions and "alert.resolve" in actions


def test_acknowledge_and_resolve_need_no_body(
    client: TestClient, api_keys: dict[str, str], seeded_engine: Engine
) -> None:
    officer = bearer(api_keys["officer"])
    # a fever needs a disposition (docs/alerts.md, fever cases); other alerts need nothing
    fever = open_alert(seeded_engine, "cp-002")
    assert client.post(f"/api/v1/alerts/{fever}/acknowledge", headers=officer).status_code == 200
    assert_problem(client.post(f"/api/v1/alerts/{fever}/resolve", headers=officer), 422)
    alert_id = open_alert(seeded_engine, "cp-003", AlertType.UNREGISTERED_ENTRY)
    acked = client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=officer)
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged"
    resolved = client.post(f"/api/v1/alerts/{alert_id}/resolve", headers=officer)
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved" and resolved.json()["outcome"] == "resolved"
    # a body that is there must still be right
    other = open_alert(seeded_engine, "cp-004")
    assert_problem(
        client.post(f"/api/v1/alerts/{other}/resolve", json={"outcome": ""}, headers=officer), 422
    )


def test_silences_and_webhook_routes(
    client: TestClient,
    api_keys: dict[str, str],
) -> None:
    officer = bearer(api_keys["officer"])
    start = datetime.now(UTC)
    body = {
        "checkpoint_id": "cp-003",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=2)).isoformat(),
        "reason": "repairs",
    }
    created = client.post("/api/v1/silences", json=body, headers=officer)
    assert created.status_code == 201, created.text
    assert [s["id"] for s in client.get("/api/v1/silences", headers=officer).json()] == [
        created.json()["id"]
    ]
    both = client.post("/api/v1/silences", json={**body, "site_id": "res-01"}, headers=officer)
    assert_problem(both, 422, "exactly one")
    assert_problem(
        client.post("/api/v1/silences", json=body, headers=bearer(api_keys["viewer"])), 403
    )
    lifted = client.post(f"/api/v1/silences/{created.json()['id']}/lift", headers=officer)
    assert lifted.json()["lifted_at"] is not None
    assert client.get("/api/v1/silences", headers=officer).json() == []

    admin = bearer(api_keys["admin"])
    route = client.post(
        "/api/v1/webhooks",
        json={"name": "WeCom", "url": "https://hooks.example/a", "min_severity": "major"},
        headers=admin,
    )
    assert route.status_code == 201, route.text
    assert route.json()["secret"].startswith("whsec_")
    assert "secret" not in client.get("/api/v1/webhooks", headers=admin).json()[0]
    bad = client.patch(
        f"/api/v1/webhooks/{route.json()['id']}", json={"url": "ftp://x"}, headers=admin
    )
    assert_problem(bad, 422, "http")
    off = client.patch(
        f"/api/v1/webhooks/{route.json()['id']}", json={"enabled": False}, headers=admin
    )
    assert off.json()["enabled"] is False
    assert (
        client.get(f"/api/v1/webhooks/{route.json()['id']}/deliveries", headers=admin).json() == []
    )
    assert_problem(client.get("/api/v1/webhooks", headers=officer), 403)


async def read_events(response: httpx.Response, wanted: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line.startswith(("id:", "event:", "data:")):
            name, _, value = line.partition(":")
            current[name] = value.strip()
        elif line == "" and "data" in current:
            events.append(
                {
                    "id": int(current["id"]),
                    "event": current["event"],
                    "data": json.loads(current["data"]),
                }
            )
            current = {}
            if len(events) >= wanted:
                break
    return events


async def test_sse_feed_streams_new_alert_changes_and_resumes(
    served: str,
    api_keys: dict[str, str],
    seeded_engine: Engine,
) -> None:
    """An async client, as a browser's EventSource is: the stream stays open while the
    test adds alerts."""
    first = open_alert(seeded_engine, "cp-001")
    url = f"{served}/api/v1/alerts/stream"
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(url)).status_code == 401
        # a key in the URL would be written to access logs: refused, saying so
        in_url = await http.get(url, params={"api_key": api_keys["viewer"]})
        assert in_url.status_code == 401 and "in the URL" in in_url.json()["detail"]
        # with the key in a header: only new changes
        async with http.stream("GET", url, headers=bearer(api_keys["viewer"])) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            second = open_alert(seeded_engine, "cp-002", AlertType.STAFFING_GAP)
            events = await read_events(response, 1)
        assert [(e["event"], e["data"]["alert_id"], e["data"]["action"]) for e in events] == [
            ("alert", second, "opened")
        ]
        assert events[0]["data"]["type"] == "staffing_gap"
        # resume from the start with Last-Event-ID 0: both, in order
        async with http.stream(
            "GET", url, headers={**bearer(api_keys["viewer"]), "Last-Event-ID": "0"}
        ) as response:
            events = await read_events(response, 2)
        assert [e["data"]["alert_id"] for e in events] == [first, second]
        # a duty key sees its own checkpoints only (cp-001, cp-002)
        open_alert(seeded_engine, "cp-077", AlertType.CLOCK_SKEW)
        fourth = open_alert(seeded_engine, "cp-001", AlertType.SENSOR_FAULT)
        async with http.stream(
            "GET", url, params={"after": 0}, headers=bearer(api_keys["duty"])
        ) as response:
            events = await read_events(response, 3)
        assert [e["data"]["alert_id"] for e in events] == [first, second, fourth]


def _passages(engine: Engine, count: int) -> list[datetime]:
    base = datetime(2020, 2, 5, 8, 0, tzinfo=UTC)
    stamps = [base + timedelta(seconds=n // 2) for n in range(count)]  # pairs share a ts
    rows = [
        {
            "checkpoint_id": "cp-001" if n % 3 else "cp-002",
            "msg_id": f"p{n}",
            "ts": ts,
            "device_ts": ts,
            "received_at": ts,
            "clock_adjusted": False,
            "direction": "in" if n % 2 else "out",
            "kind": "person",
            "registration": "registered" if n % 4 else "no_pass",
            "quarantined": False,
            "screened": n % 5 != 0,
            "id_masked": "4403**********0000",
        }
        for n, ts in enumerate(stamps)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Passage.__table__), rows)  # type: ignore[attr-defined]
    return stamps


def test_passages_pages_cover_every_row_once_and_csv_streams_them(
    client: TestClient,
    api_keys: dict[str, str],
    seeded_engine: Engine,
) -> None:
    _passages(seeded_engine, 57)
    viewer = bearer(api_keys["viewer"])
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/passages", params=params, headers=viewer).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 57 and len(set(seen)) == 57
    filtered = client.get(
        "/api/v1/passages",
        params={"checkpoint_id": "cp-002", "registration": "no_pass", "limit": 1000},
        headers=viewer,
    ).json()
    assert filtered["items"] and all(
        p["checkpoint_id"] == "cp-002" and p["registration"] == "no_pass" for p in filtered["items"]
    )
    unscreened = client.get("/api/v1/passages?screened=false&limit=1000", headers=viewer).json()
    assert len(unscreened["items"]) == 12
    assert_problem(client.get("/api/v1/passages?cursor=bm9wZQ", headers=viewer), 422, "cursor")
    rows = export_rows(client.get("/api/v1/passages/export.csv?direction=in", headers=viewer))
    assert len(rows) == 28 and {r["direction"] for r in rows} == {"in"}
    board = client.get("/api/v1/checkpoints", headers=viewer).json()
    assert len(board["checkpoints"]) == 102
    cp1 = next(c for c in board["checkpoints"] if c["id"] == "cp-001")
    assert set(cp1["open_alerts"]) == {"critical", "major", "warning"}
    assert cp1["understaffed"] is True  # min_staff 2, nobody on duty
    detail = client.get("/api/v1/checkpoints/cp-002?recent=3", headers=viewer).json()
    assert len(detail["recent_passages"]) == 3


def test_dead_letters_are_listed_and_counted_by_reason_for_admins(
    client: TestClient,
    api_keys: dict[str, str],
    seeded_engine: Engine,
) -> None:
    now = utcnow()
    with seeded_engine.begin() as conn:
        conn.execute(
            insert(DeadLetter.__table__),
            [  # type: ignore[attr-defined]
                {
                    "received_at": now,
                    "topic": "cpm/v1/cp/cp-001/entry",
                    "checkpoint_id": "cp-001",
                    "reason": reason,
                    "detail": "x",
                    "payload": "{",
                    "payload_bytes": 1,
                }
                for reason in ("bad_json", "bad_json", "schema")
            ],
        )
    admin = bearer(api_keys["admin"])
    summary = client.get("/api/v1/dead-letters/summary", headers=admin).json()
    assert [(s["reason"], s["count"]) for s in summary] == [("bad_json", 2), ("schema", 1)]
    listed = client.get("/api/v1/dead-letters?reason=schema", headers=admin).json()["items"]
    assert len(listed) == 1 and listed[0]["reason"] == "schema"
    assert_problem(client.get("/api/v1/dead-letters", headers=bearer(api_keys["officer"])), 403)
