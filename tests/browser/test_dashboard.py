"""The dashboard in headless Chromium against a real API server and a seeded database:
the board, the language switch, the live alert feed fed by a fever published over MQTT,
acknowledging and resolving, the polling fallback, and what a read-only key may do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from services.api.auth import Role
from services.core.models.alerts import Alert
from services.core.settings import Settings
from tests.support.browser import (
    DEADLINE_MS,
    LiveServer,
    chromium_page,
    new_key,
    pipeline,
    poll,
    require_chromium,
    wait_for_js,
)

pytestmark = [
    pytest.mark.browser,
    # the browser adds nothing engine-specific; the API suite covers PostgreSQL
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    require_chromium()
    return make_settings()


@pytest.fixture
def server(settings: Settings, seeded_engine: Engine) -> Iterator[LiveServer]:
    live = LiveServer(settings)
    live.start()
    yield live
    live.stop()


def fever_alerts(engine: Engine, checkpoint_id: str) -> list[Alert]:
    with Session(engine) as session:
        query = select(Alert).where(Alert.type == "fever", Alert.checkpoint_id == checkpoint_id)
        return list(session.exec(query))


def api_has_whoami(server: LiveServer) -> bool:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    return "/api/v1/whoami" in paths


def test_board_shows_all_102_checkpoints_by_site_and_the_language_switch_is_remembered(
    server: LiveServer, seeded_engine: Engine, tmp_path: Path
) -> None:
    key = new_key(seeded_engine, Role.VIEWER, "board test")
    with chromium_page(tmp_path / "profile", server.url) as browser:
        page = browser.page
        browser.sign_in(key)
        # the key is in no storage a script can read, nor in the stream's URL
        stored = page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])")
        assert key not in stored and key[4:20] not in stored
        assert "cpm_session" not in page.evaluate("document.cookie")
        assert key not in page.content()
        assert page.locator(".tile").count() == 102
        # each record class's deletion rule (GET /privacy/retention), in Chinese first
        passages = page.locator("#retention-list tr[data-record-class=passage]")
        passages.wait_for()
        assert "通行记录" in passages.inner_text() and "28 天" in passages.inner_text()
        assert page.locator(".site").count() == 20
        assert page.locator(".site[data-site=res-01] .tile").count() == 5
        # no passages yet: no temperature or registration figure (never 0 % or 100 %);
        # nobody on duty and no device online: staffing and uptime are 0 %, in red
        today = page.locator("#gauges-today .gauge")
        assert [today.nth(i).get_attribute("data-state") for i in range(4)] == [
            "none",
            "none",
            "bad",
            "bad",
        ]
        values = page.locator("#gauges-today .gauge-value").all_inner_texts()
        assert values == ["—", "—", "0.0%", "0.0%"]

        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert page.locator("h1").inner_text() == "体温监测点值守看板"
        assert page.locator(".site[data-site=res-01] h3").inner_text().startswith("住宅小区1号")
        assert page.locator(".tile[data-checkpoint=cp-001] .tile-name").inner_text() == "北门"
        page.locator("#lang-toggle").click()
        wait_for_js(page, "document.documentElement.lang === 'en'")
        assert page.locator("h1").inner_text() == "Checkpoint duty board"
        assert page.locator(".tile[data-checkpoint=cp-001] .tile-name").inner_text() == "North gate"
        assert "Residential compound 1" in page.locator(".site[data-site=res-01] h3").inner_text()
        page.reload()
        browser.wait_ready()  # the key and the language are both remembered
        assert page.locator("h1").inner_text() == "Checkpoint duty board"
        assert page.locator(".tile").count() == 102

        page.locator(".tile[data-checkpoint=cp-007]").click()
        dialog = page.locator("dialog#detail")
        dialog.locator(".facts").wait_for()
        assert dialog.locator(".detail-title").inner_text().startswith("cp-007")
        assert "No passages yet" in dialog.inner_text()
        dialog.locator("#detail-close").click()
        assert not dialog.is_visible()

        page.locator("#lang-toggle").click()
        wait_for_js(page, "document.documentElement.lang === 'zh-CN'")
        assert page.locator("#board-panel h2").inner_text() == "监测点看板"
        assert browser.errors == []


def test_a_fever_published_over_mqtt_reaches_the_live_feed_and_is_acknowledged_and_resolved(
    server: LiveServer, settings: Settings, seeded_engine: Engine, tmp_path: Path
) -> None:
    key = new_key(seeded_engine, Role.OFFICER, "officer on the wall screen")
    with (
        pipeline(settings, seeded_engine) as pipe,
        chromium_page(tmp_path / "profile", server.url) as browser,
    ):
        page = browser.page
        browser.sign_in(key)
        page.wait_for_selector("#feed-status[data-mode=live]")
        assert page.locator(".feed-item").count() == 0

        pipe.device.fever("cp-020", 38.9)
        item = page.locator(".feed-item[data-type=fever]")
        item.wait_for(timeout=DEADLINE_MS)  # SSE: ingest -> alert service -> alert_history
        assert "cp-020" in item.inner_text() and "38.9" in item.inner_text()
        assert item.get_attribute("data-status") == "open"
        banner = page.locator("#critical-banner")
        assert banner.is_visible() and "cp-020" in banner.inner_text()
        # the board hears about it too: the tile turns critical
        page.wait_for_selector(".tile[data-checkpoint=cp-020][data-state=critical]")

        item.locator("button.ack").click()
        page.wait_for_selector(".feed-item[data-type=fever][data-status=acknowledged]")
        assert not banner.is_visible()
        (alert,) = fever_alerts(seeded_engine, "cp-020")
        assert alert.status == "acknowledged"
        assert alert.acknowledged_by is not None and "officer" in alert.acknowledged_by

        item.locator("button.resolve").click()
        form = item.locator("form.resolve-form")
        form.locator("select[name=outcome]").select_option("sent_to_fever_clinic")
        form.locator("input[name=note]").fill("送华侨城医院发热门诊")
        form.locator("input[name=decided_by]").fill("st-020-1")  # a fever is a case
        # another alert arrives while the officer is typing: the feed re-renders, and
        # what was chosen and typed must survive it, in the same form (a click under
        # way on a rebuilt form's button was lost: CI, 2026-12-02) with the focus kept
        form.evaluate("f => { f.dataset.marker = 'kept' }")
        form.locator("input[name=note]").focus()
        pipe.device.fever("cp-021", 38.2)
        page.locator(".feed-item[data-type=fever]").nth(1).wait_for(timeout=DEADLINE_MS)
        form = page.locator(".feed-item[data-type=fever] form.resolve-form")
        assert form.get_attribute("data-marker") == "kept"
        assert page.evaluate("document.activeElement.name") == "note"
        assert form.locator("input[name=note]").input_value() == "送华侨城医院发热门诊"
        form.locator("button[type=submit]").click()
        page.wait_for_selector(".feed-item[data-type=fever] form.resolve-form", state="detached")
        (alert,) = fever_alerts(seeded_engine, "cp-020")
        assert alert.status == "resolved" and alert.outcome == "sent_to_fever_clinic"
        assert alert.note == "送华侨城医院发热门诊"
        page.wait_for_selector(".tile[data-checkpoint=cp-020]:not([data-state=critical])")
        assert browser.errors == []


def test_without_server_sent_events_the_feed_polls(
    server: LiveServer, settings: Settings, seeded_engine: Engine, tmp_path: Path
) -> None:
    key = new_key(seeded_engine, Role.OFFICER, "old browser")
    with (
        pipeline(settings, seeded_engine) as pipe,
        chromium_page(tmp_path / "profile", server.url) as browser,
    ):
        browser.page.add_init_script("delete window.EventSource")
        browser.sign_in(key)
        browser.page.wait_for_selector("#feed-status[data-mode=polling]")
        pipe.device.fever("cp-031", 39.2)
        poll(lambda: fever_alerts(seeded_engine, "cp-031"))
        item = browser.page.locator(".feed-item[data-type=fever]")
        item.wait_for(timeout=DEADLINE_MS)  # the next poll (every 5 s) brings it
        assert "cp-031" in item.inner_text()
        assert browser.page.locator("#critical-banner").is_visible()
        assert browser.errors == []


def test_a_viewer_cannot_acknowledge(
    server: LiveServer, settings: Settings, seeded_engine: Engine, tmp_path: Path
) -> None:
    key = new_key(seeded_engine, Role.VIEWER, "phone")
    with (
        pipeline(settings, seeded_engine) as pipe,
        chromium_page(tmp_path / "profile", server.url, width=390, height=844) as browser,
    ):
        page = browser.page
        browser.sign_in(key)
        page.wait_for_selector("#feed-status[data-mode=live]")
        pipe.device.fever("cp-044", 38.4)
        item = page.locator(".feed-item[data-type=fever]")
        item.wait_for(timeout=DEADLINE_MS)
        if api_has_whoami(server):
            assert page.locator("#role-badge").get_attribute("data-role") == "viewer"
            assert item.locator("button").count() == 0
            assert browser.errors == []
        else:
            # the role is unknown to the page: the API refuses, and the page says so
            item.locator("button.ack").click()
            toast = page.locator("#toast")
            toast.wait_for()
            assert "403" in toast.inner_text() and "role" in toast.inner_text()
            # the refused request is the only console error (Chromium logs every 4xx)
            assert [e for e in browser.errors if "403" not in e] == []
        (alert,) = fever_alerts(seeded_engine, "cp-044")
        assert alert.status == "open"


def test_a_wrong_key_is_refused_with_a_message(server: LiveServer, tmp_path: Path) -> None:
    with chromium_page(tmp_path / "profile", server.url) as browser:
        page = browser.page
        page.goto(server.url + "/")
        page.locator("#api-key").fill("cpm_not-a-key")
        page.locator("#signin-form button[type=submit]").click()
        wait_for_js(page, "document.querySelector('#signin-error').textContent !== ''")
        assert "密钥无效" in page.locator("#signin-error").inner_text()
        assert page.locator("#app").is_hidden()
        assert page.evaluate("localStorage.getItem('cpm.apiKey')") is None


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        # Swagger UI lists the operations; ReDoc renders the API title as its heading
        ("/docs", ".opblock-tag"),
        ("/redoc", "h1:has-text('checkpoint-monitor API')"),
    ],
)
def test_the_api_docs_render_from_local_files_only(
    server: LiveServer, tmp_path: Path, path: str, rendered: str
) -> None:
    """Both docs pages work on a network without internet (a deployment's containers
    reach nothing else): every request goes to the API itself, and nothing the page
    does is refused by its Content-Security-Policy (a refusal is a console error)."""
    with chromium_page(tmp_path / "profile", server.url) as browser:
        page = browser.page
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(server.url + path)
        page.locator(rendered).first.wait_for()
        assert requested and all(
            url.startswith((server.url + "/", "blob:", "data:")) for url in requested
        ), requested
        assert browser.errors == []
