"""Fixtures and helpers of the API tests (tests/api/); a pytest plugin loaded by
tests/conftest.py, so the fixtures need no import."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from services.api.auth import Role, create_key_in
from services.api.main import create_app


@pytest.fixture
def api_app(seeded_engine: Engine, make_settings: Any) -> FastAPI:
    app = create_app(make_settings())
    app.state.sse_poll_s = 0.05
    return app


@pytest.fixture
def client(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def api_keys(api_app: FastAPI) -> dict[str, str]:
    """One key per role; the duty key covers cp-001 and cp-002 only."""
    engine = api_app.state.engine
    keys = {role.value: create_key_in(engine, role, f"test {role.value}")[1] for role in Role}
    keys["duty"] = create_key_in(engine, Role.DUTY, "duty north", ["cp-001", "cp-002"])[1]
    return keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: Any, status: int, contains: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    assert contains in body["detail"], body
    return body
