"""Fixtures and helpers of the API tests (tests/api/); a pytest plugin loaded by
tests/conftest.py, so the fixtures need no import."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from services.api.auth import Role, create_key_in
from services.api.main import create_app
from services.api.pagination import BOM
from tests.support.env import free_port


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


@pytest.fixture
def served(api_app: FastAPI) -> Iterator[str]:
    """The app on a real socket: SSE and aborted CSV streams need a streaming client."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(api_app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def export_rows(response: Any) -> list[dict[str, str]]:
    """The rows of a complete CSV export: it starts with a UTF-8 BOM and ends with the
    `# end of export: N rows` line, N being the rows before it."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    text = response.content.decode("utf-8")
    assert text.startswith(BOM), text[:20]
    body, _, last = text[len(BOM) :].rstrip("\r\n").rpartition("\r\n")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert last == f"# end of export: {len(rows)} rows", last
    return rows


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
