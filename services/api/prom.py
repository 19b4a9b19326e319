"""Prometheus metrics: API request counters of this process, plus gauges read from the
database at scrape time. Ingest and the alert service are separate processes; reading
their effects from the database (dead letters, open alerts, rows stored, the delivery
outbox) is what every API replica can report truthfully."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, func, select, text
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core import online
from services.core.db import utcnow
from services.core.tables import state_t

log = logging.getLogger(__name__)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "cpm_api_requests",
            "API requests by route template, method and status",
            ("route", "method", "status"),
            registry=registry,
        )
        self.auth_failures = Counter(
            "cpm_api_auth_failures",
            "Requests with an unknown or revoked API key",
            registry=registry,
        )
        self.auth_blocks = Counter(
            "cpm_api_auth_blocks",
            "Client addresses blocked for too many failed key checks",
            registry=registry,
        )
        self.latency = Histogram(
            "cpm_api_request_duration_seconds",
            "API request latency by route template",
            ("route",),
            registry=registry,
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )


class DatabaseCollector(Collector):
    """Gauges computed from the database on each scrape (a few cheap aggregate queries)."""

    QUERIES: tuple[tuple[str, str, str, str], ...] = (
        (
            "cpm_dead_letters",
            "Dead-lettered device messages stored, by reason",
            "reason",
            "SELECT reason, COUNT(*) FROM dead_letter GROUP BY reason",
        ),
        (
            "cpm_alerts_open",
            "Open or acknowledged alerts, by severity",
            "severity",
            "SELECT severity, COUNT(*) FROM alert WHERE status <> 'resolved' GROUP BY severity",
        ),
        (
            "cpm_outbox_messages",
            "Alert deliveries in the outbox, by state (pending means not yet delivered)",
            "state",
            "SELECT state, COUNT(*) FROM outbox GROUP BY state",
        ),
        (
            "cpm_broker_sessions_lost",
            "Times the broker came back without an ingest process's persistent session "
            "(what was queued for it is lost), by client id",
            "client_id",
            "SELECT client_id, sessions_lost FROM broker_session",
        ),
        (
            "cpm_rows_stored",
            "Rows stored (passages and readings from the roll-ups, so no table scan)",
            "table",
            "SELECT 'passage', COALESCE(SUM(passages), 0) FROM coverage_rollup "
            "UNION ALL SELECT 'reading', COALESCE(SUM(readings), 0) FROM coverage_rollup "
            "UNION ALL SELECT 'alert', COUNT(*) FROM alert "
            "UNION ALL SELECT 'duty_event', COUNT(*) FROM duty_event "
            "UNION ALL SELECT 'device_status_event', COUNT(*) FROM device_status_event",
        ),
    )

    def __init__(self, engine: Engine, device_silence: timedelta) -> None:
        self.engine = engine
        self.device_silence = device_silence

    def device_states(self, conn: Connection) -> GaugeMetricFamily:
        """As the board shows them (services/core/online.py): silence past the threshold
        is offline here too."""
        family = GaugeMetricFamily(
            "cpm_checkpoints_by_device_state",
            "Checkpoints by device state (online, offline, unknown), as the board shows "
            "them: a device silent past CPM_DEVICE_SILENCE_S counts as offline",
            labels=["state"],
        )
        now = utcnow()
        counts = Tally(
            online.shown_state(state, _aware(seen), now, self.device_silence)
            for state, seen in conn.execute(select(state_t.c.device_state, state_t.c.last_seen_at))
        )
        for state in (online.ONLINE, online.OFFLINE, online.UNKNOWN):
            family.add_metric([state], float(counts[state]))
        return family

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("cpm_database_up", "1 when the API could query the database")
        families: list[GaugeMetricFamily] = []
        try:
            with self.engine.connect() as conn:
                for name, doc, label, sql in self.QUERIES:
                    family = GaugeMetricFamily(name, doc, labels=[label])
                    for key, value in conn.execute(text(sql)):
                        family.add_metric([str(key)], float(value or 0))
                    families.append(family)
                families.append(self.device_states(conn))
                newest = conn.execute(select(func.max(state_t.c.last_passage_at))).scalar()
            age = GaugeMetricFamily(
                "cpm_last_passage_age_seconds",
                "Seconds since the newest stored passage (ingest stalled when it grows)",
            )
            if newest is not None:
                # a device clock ahead of ours stamps passages in the future: not negative
                age.add_metric([], max(0.0, (utcnow() - _aware(newest)).total_seconds()))
            families.append(age)
            up.add_metric([], 1)
        except Exception as exc:  # a scrape must never fail because the DB is away
            log.warning("metrics: database query failed: %s", exc)
            families = []
            up.add_metric([], 0)
        yield up
        yield from families


def sanitise_request_id(value: str | None) -> str:
    if value and len(value) <= 64 and all(ch.isalnum() or ch in "-_.:" for ch in value):
        return value
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route as a template (`/api/v1/alerts/{alert_id}`), so labels stay few;
    'unmatched' for a 404 without a route."""
    if scope.get("route") is None:
        return "unmatched"
    path: str = scope.get("path", "")
    params: dict[str, Any] = scope.get("path_params") or {}
    if not params:
        return path
    parts = path.split("/")
    values = {str(v): k for k, v in params.items()}
    return "/".join("{" + values[p] + "}" if p in values else p for p in parts)


class RequestContextMiddleware:
    """Gives each request an id (X-Request-ID, echoed back) and counts it."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id")
        request_id = sanitise_request_id(incoming.decode("latin-1") if incoming else None)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            template = route_template(scope)
            self.metrics.requests.labels(template, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)


def _aware(value: Any) -> Any:
    """A UTCDateTime read by raw SQL may come back naive (SQLite): it is UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
