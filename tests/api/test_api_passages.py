"""What the API shows of a passage's temperature, from rows ingest stored through the broker."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from services.core.demo import DemoCommunity
from services.ingest.service import IngestService
from tests.support import Publisher, wait_until
from tests.support.api import bearer, export_rows
from tests.support.ingest import stamp, stored, topic


def test_a_passage_shows_the_temperature_that_screened_it(
    client: TestClient,
    api_keys: dict[str, str],
    ingest: IngestService,
    device: Publisher,
    seeded_engine: Engine,
    small_community: DemoCommunity,
) -> None:
    people = small_community.people

    def entry(n: int, offset_s: float, **extra: float) -> dict[str, object]:
        return {
            "msg_id": f"e{n}",
            "ts": stamp(offset_s),
            "direction": "in",
            "kind": "person",
            "id_number": people[n].id_number,
            "qr_pass": people[n].pass_code,
            **extra,
        }

    device.publish(topic(ingest, "cp-006", "entry"), entry(1, -60, temp_c=36.2))  # terminal
    device.publish(topic(ingest, "cp-006", "entry"), entry(2, -30))  # a handheld's, below
    device.publish(
        topic(ingest, "cp-006", "reading"),
        {"msg_id": "r2", "ts": stamp(-29), "temp_c": 37.8, "direction": "in"},
    )
    device.publish(topic(ingest, "cp-006", "entry"), entry(3, 0))  # nobody measured
    wait_until(lambda: stored(seeded_engine, "passage") == 3)
    assert ingest.wait_idle()
    viewer = bearer(api_keys["viewer"])

    listed = client.get("/api/v1/passages?checkpoint_id=cp-006", headers=viewer).json()
    temps = {p["msg_id"]: p["screening_temp_c"] for p in listed["items"]}
    assert temps == {"e1": 36.2, "e2": 37.8, "e3": None}

    detail = client.get("/api/v1/checkpoints/cp-006", headers=viewer).json()
    assert {p["msg_id"]: p["screening_temp_c"] for p in detail["recent_passages"]} == temps

    exported = client.get("/api/v1/passages/export.csv?checkpoint_id=cp-006", headers=viewer)
    rows = {r["msg_id"]: r["screening_temp_c"] for r in export_rows(exported)}
    assert rows == {"e1": "36.2", "e2": "37.8", "e3": ""}
