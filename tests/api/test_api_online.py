"""One notion of online: a device silent past CPM_DEVICE_SILENCE_S is offline on the
board and in the Prometheus gauge (as for the device_offline alert and device uptime),
and online again with its next message."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from services.core.db import utcnow
from tests.support.alerts import set_state
from tests.support.api import bearer


def board_states(client: TestClient, key: str) -> dict[str, tuple[str, bool, bool]]:
    board = client.get("/api/v1/checkpoints", headers=bearer(key)).json()
    return {
        cp["id"]: (cp["device_state"], cp["online"], cp["silent"])
        for cp in board["checkpoints"]
        if cp["id"] in ("cp-001", "cp-002", "cp-003")
    }


def gauge(client: TestClient) -> dict[str, float]:
    prefix = "cpm_checkpoints_by_device_state{state="
    return {
        line[len(prefix) + 1 : line.index('"}')]: float(line.rsplit(" ", 1)[1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith(prefix)
    }


def test_a_silent_device_is_offline_on_the_board_and_the_gauge_until_heard_again(
    seeded_engine: Engine, client: TestClient, api_keys: dict[str, str]
) -> None:
    now = utcnow()
    # the default threshold is 90 s; these are far either side of it
    set_state(seeded_engine, "cp-001", device_state="online", last_seen_at=now)
    set_state(
        seeded_engine, "cp-002", device_state="online", last_seen_at=now - timedelta(minutes=5)
    )
    set_state(seeded_engine, "cp-003", device_state="offline", last_seen_at=now)
    assert board_states(client, api_keys["viewer"]) == {
        "cp-001": ("online", True, False),
        "cp-002": ("offline", False, True),
        "cp-003": ("offline", False, False),
    }
    assert gauge(client) == {"online": 1.0, "offline": 2.0, "unknown": 99.0}
    board = client.get("/api/v1/checkpoints", headers=bearer(api_keys["viewer"])).json()
    assert board["fever_threshold_c"] == 37.3  # what the dashboard highlights fevers by
    detail = client.get("/api/v1/checkpoints/cp-002", headers=bearer(api_keys["viewer"])).json()
    assert detail["checkpoint"]["reported_state"] == "online"
    assert detail["checkpoint"]["device_state"] == "offline"
    set_state(seeded_engine, "cp-002", last_seen_at=utcnow())  # its next message
    assert board_states(client, api_keys["viewer"])["cp-002"] == ("online", True, False)
    assert gauge(client) == {"online": 2.0, "offline": 1.0, "unknown": 99.0}
