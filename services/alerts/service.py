"""`AlertService`: the wiring of the alert worker.

Threads: the processor (new stored rows -> alerts, woken by ingest's commit
announcements and on a short timer), the deliverer (outbox -> channels, woken when
alerts change), and APScheduler running the timed rules. Processing is safe in every
worker; timed rules and delivery run only in the leader (leader.py).

Tests drive it without threads: `process()`, `run_timers()`, `deliver()`, with an
injected `clock`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from services.alerts.delivery import Deliverer, RetryPolicy
from services.alerts.leader import Leadership
from services.alerts.notifiers import MqttNotifier, Notifier, WebhookNotifier
from services.alerts.processor import SOURCES, Processor, ensure_watermarks
from services.alerts.robots import make_notifiers
from services.alerts.robots.dispatch import RobotDispatcher
from services.alerts.robots.messages import Context
from services.alerts.rules_timed import Thresholds
from services.alerts.timers import UNSCREENED_WATERMARK, TimerReport, Timers
from services.core.db import get_engine, utcnow
from services.core.protocol import committed_topic
from services.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class AlertTuning:
    """Knobs of the worker itself (the rules' thresholds live in Settings)."""

    poll_interval_s: float = 1.0  # read new rows at least this often
    timers_interval_s: float = 5.0  # timed rules and escalation
    delivery_interval_s: float = 0.5  # look for due retries
    batch_size: int = 500
    gap_expiry_s: float = 30.0
    webhook_timeout_s: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    client_id: str | None = None  # MQTT client id; random when None


class AlertService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
        tuning: AlertTuning | None = None,
        notifiers: Mapping[str, Notifier] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or get_engine(settings.database_url)
        self.clock = clock
        self.tuning = tuning or AlertTuning()
        self.thresholds = Thresholds.from_settings(settings)
        self.client = self._mqtt_client()
        self.webhooks = WebhookNotifier(timeout_s=self.tuning.webhook_timeout_s)
        self.notifiers: dict[str, Notifier] = dict(
            notifiers
            or {"mqtt": MqttNotifier(self.client, settings.topic_prefix), "webhook": self.webhooks}
        )
        self.processor = Processor(
            self.engine,
            self.thresholds,
            clock,
            timedelta(seconds=settings.recheck_window_s),
            self.tuning.batch_size,
            self.tuning.gap_expiry_s,
        )
        self.timers = Timers(self.engine, self.thresholds, clock)
        self.deliverer = Deliverer(self.engine, self.notifiers, clock, self.tuning.retry)
        self.robots = RobotDispatcher(
            self.engine,
            Context(settings.dashboard_url, settings.timezone),
            clock,
            make_notifiers(self.tuning.webhook_timeout_s),
            policy=self.tuning.retry,
        )
        self.leadership = Leadership(self.engine)
        self._rows_wake = threading.Event()
        self._delivery_wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scheduler: BackgroundScheduler | None = None
        self._connected = threading.Event()
        self.stats = {"rows": 0, "timer_runs": 0, "announcements": 0, "errors": 0}
        ensure_watermarks(self.engine, [*SOURCES, UNSCREENED_WATERMARK])

    # --- synchronous steps (tests, and the threads below) ------------------------------
    def process(self) -> int:
        rows = self.processor.run_until_idle()
        self.stats["rows"] += rows
        return rows

    def run_timers(self) -> TimerReport:
        report = self.timers.run()
        self.stats["timer_runs"] += 1
        return report

    def deliver(self) -> int:
        return self.deliverer.run_until_idle() + self.robots.deliver_due()

    # --- running -------------------------------------------------------------------
    def _mqtt_client(self) -> mqtt.Client:
        endpoint = self.settings.mqtt
        # an account is bound to one client id, its username (services/deploy/acl.py)
        client_id = (
            self.tuning.client_id or endpoint.username or f"cpm-alerts-{uuid.uuid4().hex[:8]}"
        )
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        if endpoint.username:
            client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls:
            client.tls_set(ca_certs=self.settings.mqtt_ca_file)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT connection refused: %s", reason)
            return
        client.subscribe(committed_topic(self.settings.topic_prefix), qos=0)
        self._connected.set()
        self._rows_wake.set()  # catch up on whatever was committed while away

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.stats["announcements"] += 1
        self._rows_wake.set()

    def start(self, connect_timeout_s: float = 10.0) -> None:
        endpoint = self.settings.mqtt
        self.client.connect_async(endpoint.host, endpoint.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(connect_timeout_s):
            log.warning("MQTT broker not reachable yet; alerts are queued in the outbox")
        self._threads = [
            threading.Thread(target=self._process_loop, name="alerts-rows", daemon=True),
            threading.Thread(target=self._delivery_loop, name="alerts-delivery", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self._scheduler.add_job(
            self._timers_job,
            "interval",
            seconds=self.tuning.timers_interval_s,
            max_instances=1,
            coalesce=True,
            id="alert-timers",
        )
        self._scheduler.start()
        log.info("alert service started", extra={"service": "alerts"})

    def stop(self) -> None:
        self._stopping.set()
        self._rows_wake.set()
        self._delivery_wake.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
        for thread in self._threads:
            thread.join(timeout=30)
        self.deliverer.close()
        self.webhooks.close()
        for notifier in self.robots.notifiers.values():
            getattr(notifier, "close", lambda: None)()
        self.client.disconnect()
        self.client.loop_stop()
        self.leadership.release()
        log.info("alert service stopped", extra={"service": "alerts"})

    def _process_loop(self) -> None:
        while not self._stopping.is_set():
            self._rows_wake.wait(self.tuning.poll_interval_s)
            self._rows_wake.clear()
            if self._stopping.is_set():
                break
            try:
                if self.process():
                    self._delivery_wake.set()
            except Exception:  # the database may be away; try again next pass
                self.stats["errors"] += 1
                log.exception("processing new rows failed")
                self._stopping.wait(1.0)

    def _delivery_loop(self) -> None:
        while not self._stopping.is_set():
            self._delivery_wake.wait(self.tuning.delivery_interval_s)
            self._delivery_wake.clear()
            if self._stopping.is_set():
                break
            try:
                if self.leadership.is_leader():
                    self.deliver()
            except Exception:
                self.stats["errors"] += 1
                log.exception("delivery pass failed")
                self._stopping.wait(1.0)

    def _timers_job(self) -> None:
        try:
            if not self.leadership.is_leader():
                return
            report = self.run_timers()
            if report.opened or report.resolved or report.escalated:
                self._delivery_wake.set()
        except Exception:
            self.stats["errors"] += 1
            log.exception("timed rules failed")
