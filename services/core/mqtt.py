"""The one place that builds MQTT clients (ingest, alerts, the simulator's devices):
protocol version, credentials and TLS from the settings, paho's own log lines in our
logging, and callback errors logged and survived.

paho re-raises an exception from a callback, which ends its network thread: the
process would stay up but hear nothing more. Clients built here swallow it after
logging (`suppress_exceptions`), and `logged()` wraps a callback so the log line has
its traceback.

MQTT v5 is the default (persistent sessions with an expiry, Receive Maximum, shared
subscriptions). 3.1.1 exists for the embedded demo broker (amqtt), which lacks v5:
a persistent session there is `clean_session=False`, and there is no `$share`.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from services.core.settings import Settings

PAHO_LOG = logging.getLogger("paho.mqtt")


class ShutdownNoiseFilter(logging.Filter):
    """paho's network thread may run its loop once more after `disconnect()` closed the
    socket, and says so at ERROR ("Client is not connected") on every clean stop. A real
    loss of the connection reaches our `on_disconnect` callbacks, which log it, so that
    line is demoted to DEBUG rather than alarming an operator at each shutdown."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and str(record.msg).startswith("Client is not connected"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return PAHO_LOG.isEnabledFor(logging.DEBUG)
        return True


PAHO_LOG.addFilter(ShutdownNoiseFilter())
Callback = TypeVar("Callback", bound=Callable[..., Any])


def protocol_of(name: str) -> MQTTProtocolVersion:
    return MQTTProtocolVersion.MQTTv5 if name == "5" else MQTTProtocolVersion.MQTTv311


def configure_client(client: mqtt.Client, settings: Settings) -> None:
    """Apply CPM_MQTT_URL's credentials and, for mqtts://, TLS (CPM_MQTT_CA_FILE)."""
    endpoint = settings.mqtt
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=settings.mqtt_ca_file, cert_reqs=ssl.CERT_REQUIRED)


def paho_client(
    client_id: str,
    protocol_name: str,
    *,
    persistent: bool = False,
    manual_ack: bool = False,
    client_class: type[mqtt.Client] = mqtt.Client,
) -> mqtt.Client:
    """A paho client (callback API 2) speaking `protocol_name` ("5" or "3.1.1"), its log
    lines in the `paho.mqtt` logger and its callbacks' exceptions logged, not raised.
    `persistent` keeps the session (and the QoS-1 messages queued for it) while the
    client is away."""
    protocol = protocol_of(protocol_name)
    extra = {} if protocol is MQTTProtocolVersion.MQTTv5 else {"clean_session": not persistent}
    client = client_class(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        manual_ack=manual_ack,
        **extra,  # type: ignore[arg-type]
    )
    client.enable_logger(PAHO_LOG)
    client.suppress_exceptions = True
    return client


def new_client(
    settings: Settings,
    client_id: str,
    *,
    persistent: bool = False,
    manual_ack: bool = False,
    client_class: type[mqtt.Client] = mqtt.Client,
) -> mqtt.Client:
    """A client for a service: protocol, credentials and TLS from the settings."""
    client = paho_client(
        client_id,
        settings.mqtt_protocol,
        persistent=persistent,
        manual_ack=manual_ack,
        client_class=client_class,
    )
    configure_client(client, settings)
    return client


def logged(callback: Callback) -> Callback:
    """`callback`, with any exception it raises logged (with its traceback) and
    swallowed, so that paho's network thread goes on."""

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except Exception:
            logging.getLogger(callback.__module__).exception(
                "MQTT callback %s failed; the client carries on", callback.__qualname__
            )
            return None

    return guarded  # type: ignore[return-value]


def network_alive(client: mqtt.Client) -> bool:
    """paho's network thread (`loop_start`) is still running. paho 2.x keeps it in
    `_thread` and clears that when the loop ends; there is no public accessor."""
    thread = getattr(client, "_thread", None)
    return thread is not None and bool(thread.is_alive())


def connect_async(
    client: mqtt.Client,
    settings: Settings,
    *,
    session_expiry_s: int | None = None,
    receive_maximum: int | None = None,
    keepalive: int = 30,
) -> None:
    """Connect in the background (paho reconnects by itself from then on)."""
    endpoint = settings.mqtt
    if protocol_of(settings.mqtt_protocol) is not MQTTProtocolVersion.MQTTv5:
        client.connect_async(endpoint.host, endpoint.port, keepalive=keepalive)
        return
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho
    if session_expiry_s is not None:
        properties.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        properties.ReceiveMaximum = receive_maximum
    client.connect_async(
        endpoint.host,
        endpoint.port,
        keepalive=keepalive,
        clean_start=session_expiry_s is None,
        properties=properties,
    )
