"""Helpers of the dashboard's browser tests: a real uvicorn server on a free port, Debian's
Chromium driven by Playwright, and the device-to-alert pipeline (ingest + alert service)
fed over the real broker. No tests here."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine

from services.alerts.service import AlertService
from services.api.auth import Role, create_key_in
from services.api.main import create_app
from services.core.protocol import (
    ReadingMessage,
    StatusMessage,
    device_topic,
    encode,
)
from services.core.settings import Settings
from tests.support.env import free_port
from tests.support.mqtt import Publisher

CHROMIUM = Path(os.environ.get("CPM_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where the screenshot test writes docs/screenshots (unset: a temporary directory).
SCREENSHOT_DIR = os.environ.get("CPM_DASHBOARD_SCREENSHOTS")
DEADLINE_MS = 15_000  # generous upper bound for "within a few seconds" on a busy 2-core box


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


class LiveServer:
    """The API (and so the dashboard) under uvicorn, in a thread, on a free port."""

    def __init__(self, settings: Settings, sse_poll_s: float = 0.2) -> None:
        app = create_app(settings)
        app.state.sse_poll_s = sse_poll_s  # the feed tails alert_history this often
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="dashboard-api", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def new_key(engine: Engine, role: Role, name: str, checkpoints: list[str] | None = None) -> str:
    return create_key_in(engine, role, name, checkpoints)[1]


@dataclass
class BrowserPage:
    """A Playwright page that records every console error and uncaught exception."""

    page: Any
    base_url: str
    errors: list[str] = field(default_factory=list)

    def watch(self) -> None:
        self.page.on(
            "console",
            lambda message: (
                self.errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def sign_in(self, key: str) -> None:
        self.page.goto(self.base_url + "/")
        self.page.locator("#api-key").fill(key)
        self.page.locator("#signin-form button[type=submit]").click()
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.wait_for_selector("body[data-ready=true]", timeout=DEADLINE_MS)

    def screenshot(self, directory: Path, name: str, selector: str | None = None) -> Path:
        path = directory / name
        if selector is None:
            self.page.screenshot(path=str(path))
        else:
            self.page.locator(selector).screenshot(path=str(path))
        return path


@contextmanager
def chromium_page(
    profile: Path, base_url: str, width: int = 1600, height: int = 1000
) -> Iterator[BrowserPage]:
    """A fresh Chromium (own profile directory) with one page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": width, "height": height},
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(DEADLINE_MS)
            browser_page = BrowserPage(page, base_url)
            browser_page.watch()
            yield browser_page
        finally:
            context.close()


class ProtocolDevice:
    """Protocol messages for any checkpoint, sent through the tests' one publisher."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.topic_prefix
        self.publisher = Publisher(settings.mqtt_url, f"t-dash-{uuid.uuid4().hex[:8]}")

    def publish(self, checkpoint_id: str, kind: str, message: Any) -> None:
        topic = device_topic(self.prefix, checkpoint_id, kind)
        self.publisher.publish(topic, encode(message))

    def fever(self, checkpoint_id: str, temp_c: float, msg_id: str | None = None) -> None:
        self.publish(
            checkpoint_id,
            "reading",
            ReadingMessage.model_validate(
                {
                    "msg_id": msg_id or f"fever-{uuid.uuid4().hex[:8]}",
                    "ts": datetime.now(UTC).isoformat(),
                    "temp_c": temp_c,
                    "direction": "in",
                }
            ),
        )

    def status(self, checkpoint_id: str, state: str) -> None:
        now = datetime.now(UTC).isoformat()
        self.publish(
            checkpoint_id, "status", StatusMessage.model_validate({"state": state, "ts": now})
        )

    def close(self) -> None:
        self.publisher.close()


@dataclass
class Pipeline:
    ingest: Any
    alerts: AlertService
    device: ProtocolDevice


@contextmanager
def pipeline(settings: Settings, engine: Engine) -> Iterator[Pipeline]:
    """Ingest and the alert service in-process, and a device to publish with."""
    from services.ingest.service import IngestService

    ingest = IngestService(settings, engine)
    alerts = AlertService(settings.model_copy(update={"alerts_poll_interval_s": 0.5}), engine)
    ingest.start()
    alerts.start()
    device = ProtocolDevice(settings)
    try:
        yield Pipeline(ingest, alerts, device)
    finally:
        device.close()
        alerts.stop()
        ingest.stop()


def poll(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    """The condition's first truthy value before the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met before the deadline")


def wait_for_js(page: Any, expression: str, timeout_s: float = 30.0) -> None:
    """Poll a JavaScript expression until it is truthy. Playwright's `wait_for_function`
    evaluates its predicate with `eval` inside the page, which the dashboard's
    Content-Security-Policy (no 'unsafe-eval') forbids; `page.evaluate` goes through the
    DevTools protocol, which the policy does not govern."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression!r} still false after {timeout_s} s")
        time.sleep(0.05)
