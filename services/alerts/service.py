"""`AlertService`: the wiring of the alert worker.

Three jobs on one scheduler (services/core/schedule.py): the processor (new stored
rows -> alerts, woken by ingest's commit announcements and on a short interval), the
timed rules, and the deliverer (outbox -> channels, woken when alerts change).
Processing is safe in every worker; timed rules and delivery run only in the leader
(leader.py). Intervals, batch size and the webhook retry policy are settings.

Tests drive it without threads: `process()`, `run_timers()`, `deliver()`, with an
injected `clock`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine

from services.alerts.delivery import Deliverer, RetryPolicy
from services.alerts.egress import EgressPolicy
from services.alerts.event_processor import SOURCES, Processor
from services.alerts.leader import Leadership
from services.alerts.notifiers import MqttNotifier, Notifier, WebhookNotifier
from services.alerts.robots import make_notifiers
from services.alerts.robots.dispatch import RobotDispatcher
from services.alerts.robots.messages import Context
from services.alerts.timed_processor import UNSCREENED_WATERMARK, TimerReport, Timers
from services.alerts.timed_rules import Thresholds
from services.alerts.watermark import ensure_watermarks
from services.core.db import get_engine, utcnow
from services.core.mqtt import connect_async, logged, new_client
from services.core.protocol import committed_topic
from services.core.schedule import Schedule
from services.core.settings import Settings

log = logging.getLogger(__name__)
ROWS, TIMERS, DELIVERY = "alert-rows", "alert-timers", "alert-delivery"


class AlertService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        clock: Callable[[], datetime] = utcnow,
        notifiers: Mapping[str, Notifier] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or get_engine(settings.database_url)
        self.clock = clock
        self.thresholds = Thresholds.from_settings(settings)
        self.client = self._mqtt_client()
        egress = EgressPolicy.parse(settings.webhook_allow_hosts)
        self.webhooks = WebhookNotifier(timeout_s=settings.webhook_timeout_s, egress=egress)
        self.notifiers: dict[str, Notifier] = dict(
            notifiers
            or {"mqtt": MqttNotifier(self.client, settings.topic_prefix), "webhook": self.webhooks}
        )
        self.processor = Processor(
            self.engine,
            self.thresholds,
            clock,
            timedelta(seconds=settings.recheck_window_s),
            settings.alerts_batch_size,
            settings.alerts_gap_expiry_s,
        )
        self.timers = Timers(self.engine, self.thresholds, clock)
        retry = RetryPolicy.from_settings(settings)
        self.deliverer = Deliverer(self.engine, self.notifiers, clock, retry)
        self.robots = RobotDispatcher(
            self.engine,
            Context(settings.dashboard_url, settings.timezone),
            clock,
            make_notifiers(settings.webhook_timeout_s, egress=egress),
            policy=retry,
        )
        self.leadership = Leadership(self.engine)
        self.schedule = self._schedule()
        self._connected = threading.Event()
        self.stats = {"rows": 0, "timer_runs": 0, "announcements": 0}
        ensure_watermarks(self.engine, [*SOURCES, UNSCREENED_WATERMARK])

    # --- synchronous steps (tests, and the threads below) ------------------------------
    def process(self) -> int:
        rows = self.processor.run_until_idle(after_pass=self._after_rows)
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
        # an account is bound to one client id, its username (services/deploy/acl.py);
        # the configured protocol (v5 unless CPM_MQTT_PROTOCOL says 3.1.1), like ingest
        client_id = (
            self.settings.alerts_client_id
            or self.settings.mqtt.username
            or f"cpm-alerts-{uuid.uuid4().hex[:8]}"
        )
        client = new_client(self.settings, client_id)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = logged(self._on_connect)
        client.on_message = logged(self._on_message)
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT connection refused: %s", reason)
            return
        client.subscribe(committed_topic(self.settings.topic_prefix), qos=0)
        self._connected.set()
        self.schedule.wake(ROWS)  # catch up on whatever was committed while away

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.stats["announcements"] += 1
        self.schedule.wake(ROWS)

    def start(self, connect_timeout_s: float = 10.0) -> None:
        connect_async(self.client, self.settings)
        self.client.loop_start()
        if not self._connected.wait(connect_timeout_s):
            log.warning("MQTT broker not reachable yet; alerts are queued in the outbox")
        self.schedule.start()
        log.info("alert service started", extra={"service": "alerts"})

    def stop(self) -> None:
        self.schedule.shutdown()
        self.deliverer.close()
        self.webhooks.close()
        for notifier in self.robots.notifiers.values():
            getattr(notifier, "close", lambda: None)()
        self.client.disconnect()
        self.client.loop_stop()
        self.leadership.release()
        log.info("alert service stopped", extra={"service": "alerts"})

    def _schedule(self) -> Schedule:
        settings = self.settings
        schedule = Schedule(is_leader=self.leadership.is_leader)
        # `process` wakes delivery after each pass that read rows (_after_rows)
        schedule.every(settings.alerts_poll_interval_s, self.process, name=ROWS)
        schedule.every(
            settings.alerts_timers_interval_s,
            self.run_timers,
            name=TIMERS,
            leader_only=True,
            then=self._after_timers,
        )
        schedule.every(
            settings.alerts_delivery_interval_s, self.deliver, name=DELIVERY, leader_only=True
        )
        return schedule

    def _after_rows(self, rows: int) -> None:
        if rows:
            self.schedule.wake(DELIVERY)

    def _after_timers(self, report: TimerReport) -> None:
        if report.opened or report.resolved or report.escalated:
            self.schedule.wake(DELIVERY)
