"""The dashboard's daily-report controls in headless Chromium: the XLSX download opens
with openpyxl, the printable page opens in a new tab with its print stylesheet, and
nothing logs a console error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine

from services.api.auth import Role
from services.core.settings import Settings
from tests.support.browser import LiveServer, chromium_page, new_key, require_chromium

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


def test_the_day_report_downloads_as_xlsx_and_opens_for_printing(
    server: LiveServer, seeded_engine: Engine, tmp_path: Path
) -> None:
    key = new_key(seeded_engine, Role.OFFICER, "report test")
    with chromium_page(tmp_path / "profile", server.url) as browser:
        page = browser.page
        browser.sign_in(key)
        day = page.locator("#report-date").input_value()
        assert len(day) == 10 and page.locator("#report-form h3").inner_text() == "每日报告（日报）"
        with page.expect_download() as download_info:
            page.locator("#report-form button[type=submit]").click()
        download = download_info.value
        assert download.suggested_filename == f"daily-report-{day}.xlsx"
        saved = tmp_path / "report.xlsx"
        download.save_as(saved)
        book = load_workbook(saved)
        assert book.sheetnames[:4] == ["概况", "各小区", "发热病例", "异常事件"]
        assert book["概况"]["B2"].value == day
        with page.expect_popup() as popup_info:
            page.locator("#report-print").click()
        popup = popup_info.value
        popup.wait_for_load_state()
        assert popup.locator("h1").inner_text() == f"社区防控日报 {day}"
        # the print stylesheet applied: table cells have the report's borders
        border = popup.locator("td").first.evaluate("e => getComputedStyle(e).borderTopStyle")
        assert border == "solid"
        assert page.locator("#report-status").inner_text() == ""
        assert browser.errors == []
