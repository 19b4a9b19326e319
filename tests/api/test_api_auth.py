"""Keys, roles, problem details, health, readiness, Prometheus metrics, the CLI."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from services.api.main import create_app
from services.cli import main as cpmon
from tests.support.api import assert_problem, bearer
from tests.support.env import free_port


def test_missing_unknown_and_revoked_keys_are_401(
    client: TestClient,
    api_keys: dict[str, str],
) -> None:
    body = assert_problem(client.get("/api/v1/checkpoints"), 401, "no API key")
    assert body["type"].endswith("/missing-api-key")
    response = client.get("/api/v1/checkpoints", headers=bearer("cpm_not-a-key"))
    assert_problem(response, 401, "unknown or revoked")
    assert response.headers["www-authenticate"].startswith("Bearer")

    created = client.post(
        "/api/v1/keys", json={"name": "temp", "role": "viewer"}, headers=bearer(api_keys["admin"])
    )
    assert created.status_code == 201, created.text
    temp = created.json()
    assert client.get("/api/v1/checkpoints", headers=bearer(temp["key"])).status_code == 200
    revoked = client.post(f"/api/v1/keys/{temp['id']}/revoke", headers=bearer(api_keys["admin"]))
    assert revoked.json()["revoked_at"] is not None
    assert_problem(client.get("/api/v1/checkpoints", headers=bearer(temp["key"])), 401)
    listed = client.get("/api/v1/keys", headers=bearer(api_keys["admin"])).json()
    assert all("key" not in row and "key_hash" not in row for row in listed)


def test_both_headers_work_and_roles_are_enforced(
    client: TestClient,
    api_keys: dict[str, str],
) -> None:
    assert client.get("/api/v1/sites", headers={"X-API-Key": api_keys["viewer"]}).status_code == 200
    assert client.get("/api/v1/sites", headers=bearer(api_keys["viewer"])).status_code == 200
    body = assert_problem(
        client.get("/api/v1/keys", headers=bearer(api_keys["viewer"])), 403, "admin role"
    )
    assert "viewer" in body["detail"]
    # tracing is for officers only, not even admins
    query = {
        "id_number": "11010519491231002X",
        "from": "2020-01-01T00:00:00Z",
        "to": "2020-01-02T00:00:00Z",
    }
    assert_problem(
        client.post("/api/v1/tracing/contacts", json=query, headers=bearer(api_keys["admin"])),
        403,
        "officer",
    )
    assert (
        client.post(
            "/api/v1/tracing/contacts", json=query, headers=bearer(api_keys["officer"])
        ).status_code
        == 200
    )
    # registry reads: admin and officer; viewers and duty keys are refused
    for role, status in (("admin", 200), ("officer", 200), ("duty", 403), ("viewer", 403)):
        assert client.get("/api/v1/people", headers=bearer(api_keys[role])).status_code == status
    for role in ("officer", "duty", "viewer"):
        response = client.post(
            "/api/v1/sites", json={"id": "x", "name": "X"}, headers=bearer(api_keys[role])
        )
        assert_problem(response, 403)


def test_validation_errors_name_the_field_and_every_response_has_a_request_id(
    client: TestClient,
    api_keys: dict[str, str],
) -> None:
    response = client.get(
        "/api/v1/metrics/coverage?bucket=week", headers=bearer(api_keys["viewer"])
    )
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["query.bucket"]
    response = client.get(
        "/api/v1/metrics/coverage?from=2020-02-02T00:00:00Z&to=2020-02-01T00:00:00Z",
        headers=bearer(api_keys["viewer"]),
    )
    assert assert_problem(response, 422)["errors"][0]["field"] == "query.to"
    response = client.get(
        "/api/v1/passages?from=2020-02-01T00:00:00", headers=bearer(api_keys["viewer"])
    )
    assert assert_problem(response, 422)["errors"][0]["field"] == "query.from"  # no offset
    assert_problem(client.get("/api/v1/nothing-here", headers=bearer(api_keys["viewer"])), 404)
    assert len(response.headers["x-request-id"]) == 32
    echoed = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"


def test_health_readiness_and_metrics(
    client: TestClient,
    api_keys: dict[str, str],
    seeded_engine: Engine,
    make_settings: Any,
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    with seeded_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO dead_letter (received_at, topic, reason, detail, payload,"
                " payload_bytes)"
                " VALUES (:at, 't', 'bad_json', 'x', '{', 1)"
            ),
            {"at": "2020-01-01 00:00:00"},
        )
    client.get("/api/v1/checkpoints", headers=bearer(api_keys["viewer"]))
    metrics = client.get("/metrics").text
    assert (
        'cpm_api_requests_total{method="GET",route="/api/v1/checkpoints",status="200"} 1.0'
        in metrics
    )
    assert 'cpm_dead_letters{reason="bad_json"} 1.0' in metrics
    assert "cpm_database_up 1.0" in metrics
    assert 'cpm_checkpoints_by_device_state{state="unknown"} 102.0' in metrics
    assert 'cpm_rows_stored{table="passage"} 0.0' in metrics

    unready = create_app(make_settings(mqtt_url=f"mqtt://127.0.0.1:{free_port()}"))
    with TestClient(unready, raise_server_exceptions=False) as other:
        assert_problem(other.get("/readyz"), 503, "broker")


def test_every_write_is_audited(client: TestClient, api_keys: dict[str, str]) -> None:
    admin = bearer(api_keys["admin"])
    response = client.post(
        "/api/v1/sites",
        json={"id": "new-site", "name": "New"},
        headers=admin,
        params={},
    )
    assert response.status_code == 201
    request_id = response.headers["x-request-id"]
    entries = client.get("/api/v1/audit?action=site.create", headers=admin).json()["items"]
    assert len(entries) == 1
    assert entries[0]["resource"] == "site/new-site"
    assert entries[0]["request_id"] == request_id
    assert entries[0]["role"] == "admin"


def test_cli_creates_a_key_printed_on_the_last_line(
    seeded_engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make_settings: Any,
) -> None:
    from services.core.settings import get_settings

    monkeypatch.setenv("CPM_DATABASE_URL", database_url)
    monkeypatch.setenv("CPM_ID_HASH_SECRET", "test-secret-0123456789abcdef")
    get_settings.cache_clear()
    try:
        assert cpmon(["apikey", "create", "--role", "duty", "--checkpoints", "cp-003"]) == 0
        key = capsys.readouterr().out.strip().splitlines()[-1]
        assert cpmon(["apikey", "create", "--role", "duty"]) == 2
        assert cpmon(["apikey", "create", "--role", "viewer", "--checkpoints", "cp-003"]) == 2
    finally:
        get_settings.cache_clear()
    app = create_app(make_settings())
    with TestClient(app) as client_:
        assert client_.get("/api/v1/sites", headers=bearer(key)).status_code == 200
        assert_problem(client_.get("/api/v1/keys", headers=bearer(key)), 403)
    with seeded_engine.connect() as conn:
        row = conn.execute(text("SELECT role, checkpoint_ids, key_hash FROM api_key")).one()
    assert row[0] == "duty" and row[1] == "cp-003" and key not in json.dumps(list(row))


def test_dashboard_is_served_at_the_root_only_when_installed(
    make_settings: Any, seeded_engine: Engine, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.api.main as api_main

    monkeypatch.setattr(api_main, "STATIC_DIR", tmp_path / "not-installed")
    with TestClient(create_app(make_settings())) as bare:
        assert bare.get("/").status_code == 404
    (tmp_path / "index.html").write_text("<h1>board</h1>")
    monkeypatch.setattr(api_main, "STATIC_DIR", tmp_path)
    with TestClient(create_app(make_settings())) as with_dashboard:
        assert with_dashboard.get("/").text == "<h1>board</h1>"
        assert with_dashboard.get("/healthz").json() == {"status": "ok"}  # API still first
        assert with_dashboard.get("/api/v1/sites").status_code == 401


def test_whoami_tells_the_caller_its_role_and_scope(
    client: TestClient, api_keys: dict[str, str]
) -> None:
    assert_problem(client.get("/api/v1/whoami"), 401)
    me = client.get("/api/v1/whoami", headers=bearer(api_keys["duty"])).json()
    assert me["role"] == "duty" and me["checkpoints"] and me["key_id"] is not None
    viewer = client.get("/api/v1/whoami", headers={"X-API-Key": api_keys["viewer"]}).json()
    assert (viewer["role"], viewer["checkpoints"]) == ("viewer", None)
