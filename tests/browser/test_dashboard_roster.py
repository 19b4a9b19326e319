"""The dashboard's roster panel in headless Chromium: per checkpoint, who is on duty
against the requirement in force (with the missing roles) and the screening-quality
indicator, in both languages, without console errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, update

from services.api.auth import Role
from services.core.settings import Settings
from services.core.tables import duty_t, screening_quality_t, staff_t
from tests.support.browser import (
    LiveServer,
    chromium_page,
    new_key,
    require_chromium,
    wait_for_js,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def server(make_settings: Callable[..., Settings], seeded_engine: Engine) -> Iterator[LiveServer]:
    require_chromium()
    live = LiveServer(make_settings())
    live.start()
    yield live
    live.stop()


def seed(engine: Engine) -> None:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(update(staff_t).where(staff_t.c.id == "st-001-1").values(duty_role="police"))
        conn.execute(
            insert(duty_t).values(
                checkpoint_id="cp-001",
                msg_id="b1",
                ts=now - timedelta(minutes=30),
                device_ts=now - timedelta(minutes=30),
                received_at=now - timedelta(minutes=30),
                staff_id="st-001-1",
                action="on",
            )
        )
        conn.execute(
            insert(screening_quality_t),
            [
                {
                    "checkpoint_id": "cp-002",
                    "direction": "in",
                    "status": "suspect",
                    "readings": 30,
                    "evaluated_at": now,
                    "evidence": {
                        "checks": [
                            {
                                "check": "identical_run",
                                "statistic": 30,
                                "threshold": 12,
                                "failed": True,
                            }
                        ]
                    },
                },
                {
                    "checkpoint_id": "cp-003",
                    "direction": "in",
                    "status": "ok",
                    "readings": 30,
                    "evaluated_at": now,
                    "evidence": {"checks": []},
                },
            ],
        )


def test_roster_state_and_screening_quality_per_checkpoint(
    server: LiveServer, seeded_engine: Engine, tmp_path: Path
) -> None:
    seed(seeded_engine)
    key = new_key(seeded_engine, Role.VIEWER, "roster test")
    with chromium_page(tmp_path / "profile", server.url) as browser:
        page = browser.page
        browser.sign_in(key)
        page.wait_for_selector("#roster-panel:not([hidden]) tr[data-checkpoint=cp-001]")
        assert page.locator("#roster-rows tr").count() == 102
        one = page.locator("#roster-rows tr[data-checkpoint=cp-001]")
        # cp-001 needs two on duty (demo min_staff): one police officer is there
        assert one.get_attribute("data-met") == "false"
        assert "1 / 2" in one.inner_text() and "民警" in one.inner_text()
        two = page.locator("#roster-rows tr[data-checkpoint=cp-002]")
        assert two.get_attribute("data-screening") == "suspect"
        assert two.locator(".screening-quality").inner_text() == "疑似走过场"
        assert two.locator(".screening-quality").get_attribute("title") == "identical_run"
        three = page.locator("#roster-rows tr[data-checkpoint=cp-003]")
        assert three.get_attribute("data-screening") == "ok"
        page.locator("#lang-toggle").click()
        wait_for_js(page, "document.documentElement.lang === 'en'")
        assert two.locator(".screening-quality").inner_text() == "Suspect (pro forma?)"
        assert "Police" in one.inner_text()
        assert browser.errors == []
