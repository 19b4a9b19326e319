"""The supervision page on a phone-sized screen (390 px) in headless Chromium: an
inspector fills in a checklist, a × with its reason fixed on the spot, the responsible
person signs on the canvas, and the signed inspection with its PNG signature is in the
database; then the overview shows it. Plus: every i18n key the page uses exists."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from services.api.auth import Role
from services.api.main import STATIC_DIR
from services.api.supervision_images import check_png
from services.core.models.supervision import Finding, Inspection, InspectionAttachment
from services.core.settings import Settings
from services.core.supervision_templates import load_default_templates
from tests.support.browser import LiveServer, chromium_page, new_key, require_chromium

PAGE_FILES = [
    STATIC_DIR / "supervision.html",
    *sorted((STATIC_DIR / "js" / "supervision").glob("*.js")),
]


def test_every_key_the_supervision_page_uses_is_translated() -> None:
    used: set[str] = set()
    for path in PAGE_FILES:
        text = path.read_text("utf-8")
        used |= set(re.findall(r"\bt\(\"([\w.]+)\"", text))
        used |= set(re.findall(r"data-i18n(?:-placeholder|-title|-aria)?=\"([\w.]+)\"", text))
        for prefix in re.findall(r"t\(`(supervision\.[\w.]+)\.\$\{", text):
            used |= {
                k
                for k in json.loads((STATIC_DIR / "i18n" / "zh-CN.json").read_text("utf-8"))
                if k.startswith(prefix + ".")
            }
    assert "supervision.submit" in used and "supervision.verdict.none" in used
    for code in ("zh-CN", "en"):
        keys = set(json.loads((STATIC_DIR / "i18n" / f"{code}.json").read_text("utf-8")))
        assert used <= keys, f"{code} lacks {sorted(used - keys)}"
    html = (STATIC_DIR / "supervision.html").read_text("utf-8")
    assert "<script>" not in html and "onclick" not in html  # CSP: no inline script
    for reference in re.findall(r"(?:src|href)=\"([^\":]+)\"", html):
        assert reference == "./" or (STATIC_DIR / reference).is_file(), reference
    assert 'href="supervision.html"' in (STATIC_DIR / "index.html").read_text("utf-8")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    require_chromium()
    return make_settings()


@pytest.fixture
def server(settings: Settings, seeded_engine: Engine) -> Iterator[LiveServer]:
    with Session(seeded_engine) as session:
        load_default_templates(session)
    live = LiveServer(settings)
    live.start()
    yield live
    live.stop()


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_inspector_fills_in_and_signs_an_inspection_on_a_phone(
    server: LiveServer, seeded_engine: Engine, tmp_path: Path
) -> None:
    key = new_key(seeded_engine, Role.INSPECTOR, "grid worker phone")
    with chromium_page(tmp_path / "profile", server.url, width=390, height=844) as browser:
        page = browser.page
        page.goto(server.url + "/supervision.html")
        page.locator("#api-key").fill(key)
        page.locator("#signin-form button[type=submit]").click()
        page.wait_for_selector("body[data-ready=true]")
        assert page.locator("h1").inner_text() == "标准化督查"
        page.locator("#sv-team").select_option("team-2")
        page.locator("#sv-target").select_option("site:res-03")
        page.wait_for_selector("#sv-period:not(:empty)")
        items = page.locator(".sv-item")
        assert items.count() == 6  # residential checklist: 6 minor items
        # the system's own verdict beside each sensor-judged item (no data yet)
        assert (
            page.locator(".sv-item[data-item='R2.1'] .sv-system").get_attribute("data-verdict")
            == "none"
        )
        page.locator("#sv-inspector").fill("李网格员")
        for code in ("R1.1", "R1.2", "R2.1", "R2.2", "R3.1"):
            page.locator(f".sv-item[data-item='{code}'] button[data-mark=pass]").click()
        page.locator(".sv-item[data-item='R3.2'] button[data-mark=fail]").click()
        # a × without its reason is refused before anything is sent
        page.locator("#sv-signer").fill("王经理")
        page.locator("#sv-submit").click()
        assert "R3.2" in page.locator("#sv-error").inner_text()
        page.locator(".sv-item[data-item='R3.2'] .sv-reason").fill("公告未张贴")
        page.locator(".sv-item[data-item='R3.2'] .sv-onspot").check()
        # large touch targets, and nothing wider than the phone
        box = page.locator(".sv-item[data-item='R1.1'] button[data-mark=pass]").bounding_box()
        assert box is not None and box["height"] >= 48 and box["width"] >= 100
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        canvas = page.locator("#sv-canvas")
        canvas.scroll_into_view_if_needed()
        c = canvas.bounding_box()
        assert c is not None and c["width"] > 300
        page.locator("#sv-submit").click()
        assert "签字" in page.locator("#sv-error").inner_text()  # no signature yet
        page.mouse.move(c["x"] + 30, c["y"] + 120)
        page.mouse.down()
        for step in range(1, 12):
            page.mouse.move(c["x"] + 30 + step * 22, c["y"] + 120 - (step % 3) * 30)
        page.mouse.up()
        assert canvas.get_attribute("data-strokes") == "1"
        page.locator("#sv-submit").click()
        page.wait_for_selector("#sv-result[data-inspection]")
        assert "1 项不达标" in page.locator("#sv-result").inner_text()
        inspection_id = int(page.locator("#sv-result").get_attribute("data-inspection") or 0)

        page.locator("#tab-overview").click()
        page.wait_for_selector("#ov-sites tr[data-key='res-03']")
        assert page.locator(".sv-card[data-card=pass_rate] b").inner_text() == "0.0%"
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert browser.errors == []

    with Session(seeded_engine) as session:
        inspection = session.get(Inspection, inspection_id)
        assert inspection is not None and inspection.signed_at is not None
        assert (inspection.team_id, inspection.site_id, inspection.signer_name) == (
            "team-2",
            "res-03",
            "王经理",
        )
        assert inspection.inspector == "李网格员" and inspection.passed is False
        signature = session.exec(
            select(InspectionAttachment).where(InspectionAttachment.inspection_id == inspection_id)
        ).one()
        png = check_png(signature.data, 512 * 1024)  # a real PNG, as wide as the canvas
        assert png.width == int(c["width"]) or abs(png.width - c["width"]) <= 1
        finding = session.exec(select(Finding).where(Finding.inspection_id == inspection_id)).one()
        assert (finding.item_code, finding.status, finding.reason) == (
            "R3.2",
            "fixed_on_spot",
            "公告未张贴",
        )
