"""The dashboard's alert-routes panel in headless Chromium against a real API server:
an admin adds a DingTalk robot route through the form and sends a test message; the
robot's answer is shown and the URL's token never is."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine

from services.api.auth import Role, create_key_in
from services.api.main import create_app
from services.core.settings import Settings
from tests.alerts.robot_receivers import RobotReceiver

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
]
CHROMIUM = Path(os.environ.get("CPM_TEST_CHROMIUM", "/usr/bin/chromium"))
TOKEN = "dashtoken0123456789abcdef0123"
SECRET = "SEC0123456789abcdefDASHBOARD"


@pytest.fixture
def server_url(make_settings: Callable[..., Settings], seeded_engine: Engine) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    config = uvicorn.Config(
        create_app(make_settings()), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


def test_an_admin_adds_a_robot_and_sees_its_answer_to_a_test_message(
    server_url: str, seeded_engine: Engine, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    key = create_key_in(seeded_engine, Role.ADMIN, "dashboard admin")[1]
    robot = RobotReceiver("dingtalk", secret=SECRET, token=TOKEN)
    errors: list[str] = []
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=str(CHROMIUM),
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
                headless=True,
                locale="zh-CN",
            )
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(20_000)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server_url + "/")
            page.locator("#api-key").fill(key)
            page.locator("#signin-form button[type=submit]").click()
            page.wait_for_selector("body[data-ready=true]")
            panel = page.locator("#robots-panel")
            panel.wait_for(state="visible")
            form = panel.locator(".robots-form")
            form.locator("input[name=name]").fill("北门值班群")
            form.locator("select[name=kind]").select_option("dingtalk")
            form.locator("input[name=url]").fill(robot.url)
            form.locator("input[name=secret]").fill(SECRET)
            form.locator("input[name=mentions]").fill("13800000001")
            form.locator("button[type=submit]").click()
            row = panel.locator(".robots-list tr")
            row.wait_for()
            assert "钉钉" in row.inner_text() and TOKEN not in page.content()
            row.locator("button.robots-test").click()
            answer = row.locator(".robots-answer.ok")
            answer.wait_for()
            assert "代码 0" in answer.inner_text() and "errcode" in answer.inner_text()
            context.close()
    finally:
        robot.close()
    [request] = robot.received
    assert request.ok and request.signed and "测试消息" in request.body["markdown"]["text"]
    assert errors == []
