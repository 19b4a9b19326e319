"""The dashboard over a simulated day: ten hours of a 3,000-person community played
through the real broker, ingest and alert service, then every main view rendered in
Chinese, in English and on a phone, without a console error.

The screenshots go to a temporary directory; to refresh docs/screenshots run
`CPM_DASHBOARD_SCREENSHOTS=docs/screenshots pytest tests/browser/test_dashboard_screenshots.py`."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from devices.simulator import Simulation, scenario_params
from services.api.auth import Role
from services.core.db import utcnow
from services.core.demo import generate_community
from services.core.models import Passage
from services.core.models.alerts import Alert
from services.core.seed import load_demo
from services.core.settings import Settings
from services.deploy.up import date_replayed_statuses
from tests.support import private_broker
from tests.support.browser import (
    SCREENSHOT_DIR,
    LiveServer,
    chromium_page,
    new_key,
    pipeline,
    poll,
    require_chromium,
    wait_for_js,
)
from tests.support.env import TEST_SECRET

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]
SIMULATED = timedelta(hours=10)
OFFLINE = ("cp-017", "cp-063")  # two devices down, so the board shows what that looks like


@pytest.fixture
def shots() -> Iterator[Path]:
    if SCREENSHOT_DIR:
        path = Path(SCREENSHOT_DIR)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)


@pytest.fixture
def own_broker() -> Iterator[str]:
    """A broker that queues without limit, as the shipped configuration does: the system
    broker's default of 1000 queued messages drops some when a busy CI falls behind."""
    with private_broker() as url:
        yield url


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_every_view_renders_a_simulated_day_in_both_languages_and_on_a_phone(
    engine: Engine,
    make_settings: Callable[..., Settings],
    shots: Path,
    tmp_path: Path,
    own_broker: str,
) -> None:
    require_chromium()
    community = generate_community(seed=2020, people=3000, vehicles=300, quarantined=30)
    # in service since the simulated day began, as `cpmon up --demo` does
    load_demo(engine, community, TEST_SECRET, commissioned_at=utcnow() - SIMULATED)
    settings = make_settings(mqtt_url=own_broker)
    params = scenario_params(
        "fever-cluster", seed=3, speed=0, duration_s=SIMULATED.total_seconds(), final_status=False
    )
    server = LiveServer(settings)
    server.start()
    officer = new_key(engine, Role.OFFICER, "community officer")
    try:
        with pipeline(settings, engine) as pipe:
            tag = uuid.uuid4().hex[:6]
            played_from = utcnow()
            manifest = Simulation(
                params,
                community,
                settings=settings,
                client_id_template=f"t-shot-{tag}-{{checkpoint_id}}",
                max_rate=4000,
            ).run()
            for checkpoint_id in OFFLINE:
                pipe.device.status(checkpoint_id, "offline")
            assert pipe.ingest.wait_idle(timeout=120)
            with engine.begin() as conn:  # as `cpmon up --demo` dates a replayed history
                date_replayed_statuses(conn, played_from)
            assert count(engine, Passage) == sum(manifest["totals"]["passages"].values())
            poll(lambda: count(engine, Alert) > 0, timeout=30)

            with chromium_page(tmp_path / "profile", server.url) as browser:
                page = browser.page
                browser.sign_in(officer)
                assert page.locator(".tile").count() == 102
                for checkpoint_id in OFFLINE:
                    tile = page.locator(f".tile[data-checkpoint={checkpoint_id}]")
                    assert "离线" in tile.inner_text()
                # the last two local days, hour by hour
                today = page.locator("#range-to").input_value()
                page.evaluate(
                    "([from, to]) => { document.querySelector('#range-from').value = from;"
                    " document.querySelector('#range-to').value = to; }",
                    [(date.fromisoformat(today) - timedelta(days=1)).isoformat(), today],
                )
                page.locator("#range-form button[type=submit]").click()
                wait_for_js(page, "document.querySelectorAll('.chart canvas').length === 2")
                temperature = page.locator("#gauges-today .gauge-value").first.inner_text()
                assert temperature.endswith("%")
                page.wait_for_timeout(300)  # let the gauge rings finish their transition
                browser.screenshot(shots, "dashboard-zh.png")
                browser.screenshot(shots, "board-zh.png", "#board-panel")
                browser.screenshot(shots, "charts-zh.png", "#charts-panel")

                # the simulated day may have left fevers (at cp-024 too) in the feed, and a
                # live event may have raised the banner already: wait for the banner to name
                # an alert that was not there before this fever
                shown = page.evaluate(
                    "[...document.querySelectorAll('.feed-item')].map(e => e.dataset.alert)"
                )
                pipe.device.fever("cp-024", 39.1)
                wait_for_js(
                    page,
                    f"(() => {{ const b = document.querySelector('#critical-banner');"
                    f" return !b.hidden && !{json.dumps(shown)}.includes(b.dataset.alert); }})()",
                )
                cued = page.locator("#critical-banner").get_attribute("data-alert")
                cued_item = page.locator(f".feed-item[data-alert='{cued}']")
                assert cued_item.get_attribute("data-type") == "fever"
                assert "cp-024" in cued_item.inner_text()
                browser.screenshot(shots, "alerts-zh.png", "#feed-panel")

                page.locator("#critical-banner #banner-close").click()
                page.locator(".tile[data-checkpoint=cp-024]").click()
                page.locator("dialog#detail table.passages").wait_for()
                assert page.locator("dialog#detail tbody tr").count() > 0
                browser.screenshot(shots, "detail-zh.png")
                page.locator("#detail-close").click()

                page.locator("#lang-toggle").click()
                wait_for_js(page, "document.documentElement.lang === 'en'")
                page.wait_for_timeout(300)
                browser.screenshot(shots, "dashboard-en.png")
                page.locator("#lang-toggle").click()
                wait_for_js(page, "document.documentElement.lang === 'zh-CN'")

                page.set_viewport_size({"width": 390, "height": 844})
                page.evaluate("window.scrollTo(0, 0)")
                page.wait_for_timeout(300)
                assert page.evaluate("document.documentElement.scrollWidth") <= 390
                browser.screenshot(shots, "phone-zh.png")
                assert browser.errors == []
    finally:
        server.stop()
