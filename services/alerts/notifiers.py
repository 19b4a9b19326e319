"""One small notifier interface, one implementation per channel.

A notifier sends one message and says how it went; it never raises, never touches the
database, never retries: the deliverer (delivery.py) owns the outbox, the order and the
retries. The third channel, the API's Server-Sent Events stream, reads `alert_history`
directly (see docs/alerts.md), so it needs no notifier here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx
import paho.mqtt.client as mqtt

from services.alerts import signing
from services.alerts.egress import STRICT, EgressPolicy, RefusedTarget
from services.core.protocol import alerts_topic


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    outbox_id: int
    channel: str
    checkpoint_id: str
    message_id: str
    event: str
    body: bytes
    url: str | None = None  # webhooks
    secret: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    # False: sending the same message again cannot succeed (a robot's "bad signature",
    # "keyword missing", ...): the deliverer gives up at once, like Alertmanager's
    # notifiers do
    retryable: bool = True
    answer: str | None = None  # the receiver's reply, shortened (shown by the API's test)
    receiver_code: int | None = None  # a group robot's own errcode / code


class Notifier(Protocol):
    name: str

    def deliver(self, message: OutboundMessage) -> DeliveryResult: ...


class MqttNotifier:
    """QoS 1 to `{prefix}/alerts/{checkpoint_id}`; delivered once the broker acks."""

    name = "mqtt"

    def __init__(self, client: mqtt.Client, prefix: str, timeout_s: float = 5.0) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout_s = timeout_s

    def deliver(self, message: OutboundMessage) -> DeliveryResult:
        topic = alerts_topic(self.prefix, message.checkpoint_id)
        try:
            info = self.client.publish(topic, message.body, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return DeliveryResult(False, error=f"publish refused: {mqtt.error_string(info.rc)}")
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError, OSError) as exc:
            return DeliveryResult(False, error=f"publish failed: {exc}")
        if not info.is_published():
            return DeliveryResult(False, error="broker did not acknowledge in time")
        return DeliveryResult(True)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


class HttpNotifier:
    """What every HTTP notifier holds: a client that never follows redirects (a
    redirect could lead past the egress check), the clock it signs with, and the
    egress policy each request is checked against."""

    def __init__(
        self,
        client: httpx.Client | None = None,
        timeout_s: float = 5.0,
        wall_clock: Callable[[], float] = time.time,
        egress: EgressPolicy = STRICT,
    ) -> None:
        self.client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self.wall_clock = wall_clock
        self.egress = egress


class WebhookNotifier(HttpNotifier):
    """POST, signed per Standard Webhooks. Any 2xx is delivered; anything else (and
    every network error) is retried by the deliverer."""

    name = "webhook"

    def deliver(self, message: OutboundMessage) -> DeliveryResult:
        if not message.url or not message.secret:
            return DeliveryResult(False, error="route has no url or secret")
        now = self.wall_clock()
        try:
            target = self.egress.pin(message.url)  # resolved and checked, every time
            headers = signing.headers(message.secret, message.message_id, int(now), message.body)
            response = target.post(self.client, message.body, headers)
        except RefusedTarget as exc:  # sending again cannot help
            return DeliveryResult(False, error=f"refused: {exc}", retryable=False)
        except signing.InvalidSecret as exc:
            return DeliveryResult(False, error=f"route secret: {exc}")
        except httpx.HTTPError as exc:
            return DeliveryResult(False, error=f"{type(exc).__name__}: {exc}"[:500])
        if 200 <= response.status_code < 300:
            return DeliveryResult(True, response.status_code)
        return DeliveryResult(
            False,
            response.status_code,
            error=f"HTTP {response.status_code}",
            retry_after_s=parse_retry_after(response.headers.get("retry-after"), now),
        )

    def close(self) -> None:
        self.client.close()
