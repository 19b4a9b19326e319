"""Filters as docs/api.md promises them: a site or checkpoint that does not exist is a
422 naming the parameter (not an empty page, nor a 404), and `registration=unregistered`
selects what the coverage metric counts as unregistered."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from services.core.db import utcnow
from services.core.models import Passage
from tests.support.api import assert_problem, bearer


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/metrics/coverage?site_id=nope", "query.site_id"),
        ("/api/v1/metrics/coverage?checkpoint_id=cp-999", "query.checkpoint_id"),
        ("/api/v1/checkpoints?site_id=zzz", "query.site_id"),
        ("/api/v1/passages?checkpoint_id=cp-999", "query.checkpoint_id"),
        ("/api/v1/passages?site_id=zzz", "query.site_id"),
        ("/api/v1/readings?checkpoint_id=cp-999", "query.checkpoint_id"),
        ("/api/v1/alerts?site_id=zzz", "query.site_id"),
        ("/api/v1/alerts?checkpoint_id=cp-999", "query.checkpoint_id"),
    ],
)
def test_unknown_references_are_422_naming_the_parameter(
    client: TestClient, api_keys: dict[str, str], path: str, field: str
) -> None:
    answer = client.get(path, headers=bearer(api_keys["admin"]))
    assert_problem(answer, 422)
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_registration_unregistered_is_every_class_but_registered(
    seeded_engine: Engine, client: TestClient, api_keys: dict[str, str]
) -> None:
    at = utcnow() - timedelta(minutes=5)
    classes = ["registered", "unknown_person", "expired_pass", "unregistered_vehicle"]

    def passage(n: int, registration: str) -> dict[str, Any]:
        vehicle = registration.endswith("vehicle")
        return {
            "checkpoint_id": "cp-003",
            "msg_id": f"p{n}",
            "ts": at,
            "device_ts": at,
            "received_at": at,
            "clock_adjusted": False,
            "direction": "in",
            "kind": "vehicle" if vehicle else "person",
            "registration": registration,
            "quarantined": False,
            "screened": not vehicle,
        }

    with seeded_engine.begin() as conn:
        rows = [passage(n, r) for n, r in enumerate(classes)]
        conn.execute(insert(Passage.__table__), rows)  # type: ignore[attr-defined]
    viewer = bearer(api_keys["viewer"])
    listed = client.get("/api/v1/passages?registration=unregistered", headers=viewer).json()
    assert sorted(p["registration"] for p in listed["items"]) == sorted(classes[1:])
    one = client.get("/api/v1/passages?registration=expired_pass", headers=viewer).json()
    assert [p["registration"] for p in one["items"]] == ["expired_pass"]
    assert_problem(client.get("/api/v1/passages?registration=nonsense", headers=viewer), 422)


def test_a_date_error_says_that_plus_must_be_written_as_percent_2b(
    client: TestClient, api_keys: dict[str, str]
) -> None:
    # `+08:00` unescaped in a query string arrives as a space
    answer = client.get(
        "/api/v1/metrics/coverage?from=2020-02-01T00:00:00+08:00",
        headers=bearer(api_keys["viewer"]),
    )
    assert_problem(answer, 422)
    (error,) = answer.json()["errors"]
    assert error["field"] == "query.from" and "`%2B`" in error["message"]
    escaped = client.get(
        "/api/v1/metrics/coverage?from=2020-02-01T00:00:00%2B08:00",
        headers=bearer(api_keys["viewer"]),
    )
    assert escaped.status_code == 200, escaped.text


def test_a_key_without_the_word_bearer_is_told_how_to_send_it(
    client: TestClient, api_keys: dict[str, str]
) -> None:
    answer = client.get("/api/v1/checkpoints", headers={"Authorization": api_keys["viewer"]})
    assert_problem(answer, 401)
    assert "Bearer KEY" in answer.json()["detail"]
    assert "no API key" not in answer.json()["detail"]


def test_openapi_declares_error_bodies_as_problem_json(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    errors = [
        (path, status, response.get("content", {}))
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for status, response in operation["responses"].items()
        if status[0] in "45"
    ]
    assert len(errors) > 50
    for path, status, content in errors:
        assert list(content) == ["application/problem+json"], (path, status)
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    served = client.get("/api/v1/passages?checkpoint_id=cp-999")  # no key: 401
    assert served.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("path", "assets"),
    [
        (
            "/docs",
            (
                "/vendor/swagger-ui/swagger-ui-bundle.js",
                "/vendor/swagger-ui/swagger-ui.css",
                "/js/swagger-init.js",
            ),
        ),
        ("/redoc", ("/vendor/redoc/redoc.standalone.js",)),
    ],
)
def test_the_api_docs_are_served_from_local_files(
    client: TestClient, path: str, assets: tuple[str, ...]
) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text
    assert "<script>" not in page.text  # nothing inline: the policy allows none
    for asset in assets:
        assert asset in page.text
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 300, asset
