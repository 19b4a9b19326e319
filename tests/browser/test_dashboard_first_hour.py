"""What a new user sees in the first hour (issue 15), in headless Chromium against a
real API server: gauges that agree with the board on first load (no 0 % staffing with
everyone on duty, the minutes before the system existed not counted), charts with
data, a silent device offline on the board within the threshold, every alert's reason
in Chinese, a fever highlighted in the checkpoint's passages, a visible confirmation
when resolving, and on a phone the alert feed first and the passages without hidden
columns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, update

from services.alerts.event_rules import Finding
from services.alerts.store import raise_alert
from services.api import coverage as cov
from services.api.auth import Role
from services.core.db import utcnow
from services.core.models import DeviceStatusEvent, DutyEvent, Passage
from services.core.models.alerts import AlertType
from services.core.settings import Settings
from services.core.tables import checkpoint_t
from services.ingest.state import add_rollups
from tests.support.alerts import set_presence, set_state
from tests.support.browser import LiveServer, chromium_page, new_key, require_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]
SILENT = "cp-005"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    require_chromium()
    return make_settings()


def passage(n: int, at: datetime, temp_c: float | None = None) -> dict[str, Any]:
    return {
        "checkpoint_id": "cp-007",
        "msg_id": f"p{n}",
        "ts": at,
        "device_ts": at,
        "received_at": at,
        "clock_adjusted": False,
        "direction": "in",
        "kind": "person",
        "registration": "registered",
        "quarantined": False,
        "screened": True,
        "temp_c": temp_c,
        "id_masked": "4403**********123X",
    }


@pytest.fixture
def first_hour(seeded_engine: Engine) -> datetime:
    """A system commissioned 2 h ago: every device online and every checkpoint staffed
    since, passages at cp-007 (one a fever), and one device silent for 150 s."""
    now = utcnow()
    since = now - timedelta(hours=2)
    with seeded_engine.begin() as conn:
        conn.execute(update(checkpoint_t).values(commissioned_at=since))
        checkpoints = list(conn.execute(checkpoint_t.select()).mappings())
        conn.execute(
            insert(DeviceStatusEvent.__table__),  # type: ignore[attr-defined]
            [
                {"checkpoint_id": cp["id"], "ts": since, "device_ts": since, "state": "online"}
                for cp in checkpoints
            ],
        )
        duty = []
        for cp in checkpoints:
            for k in range(cp["min_staff"]):
                duty.append(
                    {
                        "checkpoint_id": cp["id"],
                        "msg_id": f"d{k}",
                        "ts": since,
                        "device_ts": since,
                        "received_at": since,
                        "clock_adjusted": False,
                        "staff_id": f"st-{cp['id']}-{k}",
                        "action": "on",
                    }
                )
        conn.execute(insert(DutyEvent.__table__), duty)  # type: ignore[attr-defined]
        rows = [passage(n, now - timedelta(minutes=10 * n + 5)) for n in range(1, 10)]
        rows.append(passage(0, now - timedelta(minutes=2), temp_c=38.6))
        conn.execute(insert(Passage.__table__), rows)  # type: ignore[attr-defined]
        counts: dict[tuple[str, datetime], Counter[str]] = {}
        for row in rows:
            counts.setdefault(("cp-007", cov.floor_hour(row["ts"])), Counter()).update(
                passages=1, persons_in=1, registered=1, screened_persons=1
            )
        add_rollups(conn, counts)
    for cp in checkpoints:
        heard = now - timedelta(seconds=150) if cp["id"] == SILENT else now
        set_state(seeded_engine, cp["id"], device_state="online", state_since=since)
        set_state(seeded_engine, cp["id"], last_seen_at=heard)
        for k in range(cp["min_staff"]):
            set_presence(seeded_engine, cp["id"], f"st-{cp['id']}-{k}", True, since)
    with seeded_engine.begin() as conn:
        finding = Finding(
            AlertType.FEVER, "cp-007", "res-02", "h:test", "Fever 38.6 °C at cp-007", {}
        )
        raise_alert(conn, finding, now, timedelta(minutes=2))
    return now


@pytest.fixture
def server(settings: Settings, seeded_engine: Engine, first_hour: datetime) -> Iterator[LiveServer]:
    live = LiveServer(settings)
    live.start()
    yield live
    live.stop()


def test_first_load_gauges_agree_with_the_board_and_the_charts_have_data(
    server: LiveServer, seeded_engine: Engine, tmp_path: Path, first_hour: datetime
) -> None:
    key = new_key(seeded_engine, Role.OFFICER, "first hour")
    with chromium_page(tmp_path / "profile", server.url) as browser:
        page = browser.page
        browser.sign_in(key)
        today = page.locator("#gauges-today .gauge-value").all_inner_texts()
        in_range = page.locator("#gauges-range .gauge-value").all_inner_texts()
        # temperature, registration, staffing, uptime: everyone on duty since the
        # system went into service two hours ago: 100 % staffed, not 0.3 %
        assert today[:3] == ["100%", "100%", "100%"]
        assert float(today[3].rstrip("%")) >= 99.0
        # the range (the last 7 days, today included) counts the same in-service time,
        # and by default starts when the system went into service: no empty days
        assert in_range == today
        in_service = (first_hour - timedelta(hours=2)).astimezone(ZoneInfo("Asia/Shanghai"))
        assert page.locator("#range-from").input_value() == in_service.date().isoformat()
        # a device silent past the threshold (90 s) is offline on the board at once
        page.wait_for_selector(f".tile[data-checkpoint={SILENT}][data-state=offline]")
        assert "101/102" in page.locator(".board-summary").inner_text()
        # the charts hold the passages
        assert page.locator("#chart-passages").get_attribute("data-passages") == "10"
        assert page.locator("#chart-passages canvas").count() >= 1
        # the alert's reason in Chinese, and resolving says it did
        item = page.locator(".feed-item[data-type=fever]")
        assert "体温 38.6 °C" in item.locator(".feed-detail").inner_text()
        item.locator("button.resolve").click()
        form = item.locator("form.resolve-form")
        form.locator("select[name=outcome]").select_option("sent_to_fever_clinic")
        form.locator("input[name=decided_by]").fill("st-007-1")  # a fever is a case
        form.locator("button[type=submit]").click()
        toast = page.locator("#toast[data-kind=ok]")
        toast.wait_for()
        assert "已办结" in toast.inner_text()
        # the fever stands out in the checkpoint's passages
        page.locator(".tile[data-checkpoint=cp-007]").click()
        fever = page.locator("dialog#detail tr[data-fever=true]")
        fever.wait_for()
        assert fever.count() == 1 and "38.6" in fever.inner_text()
        assert browser.errors == []


def test_on_a_phone_the_feed_comes_first_and_no_column_is_hidden(
    server: LiveServer, seeded_engine: Engine, tmp_path: Path
) -> None:
    key = new_key(seeded_engine, Role.OFFICER, "phone")
    with chromium_page(tmp_path / "profile", server.url, width=390, height=844) as browser:
        page = browser.page
        browser.sign_in(key)
        feed = page.locator("#feed-panel").bounding_box()
        coverage = page.locator("#coverage").bounding_box()
        board = page.locator("#board-panel").bounding_box()
        assert feed is not None and coverage is not None and board is not None
        assert feed["y"] < coverage["y"] < board["y"]
        page.locator(".tile[data-checkpoint=cp-007]").click()
        page.locator("dialog#detail tbody tr").first.wait_for()
        overflow = page.evaluate(
            "[...document.querySelectorAll('dialog#detail .table-wrap')]"
            ".map((w) => w.scrollWidth - w.clientWidth)"
        )
        assert overflow and max(overflow) <= 0, overflow
        cells = page.locator("dialog#detail tbody tr").first.locator("td")
        assert cells.count() == 7 and all(cells.nth(i).is_visible() for i in range(7))
        assert browser.errors == []
