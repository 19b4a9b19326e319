"""MQTT client set-up shared by every service: protocol version, credentials and TLS
from the settings.

MQTT v5 is the default (persistent sessions with an expiry, Receive Maximum, shared
subscriptions). 3.1.1 exists for the embedded demo broker (amqtt), which lacks v5:
a persistent session there is `clean_session=False`, and there is no `$share`.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from services.core.settings import Settings


def protocol_of(name: str) -> MQTTProtocolVersion:
    return MQTTProtocolVersion.MQTTv5 if name == "5" else MQTTProtocolVersion.MQTTv311


def configure_client(client: mqtt.Client, settings: Settings) -> None:
    """Apply CPM_MQTT_URL's credentials and, for mqtts://, TLS (CPM_MQTT_CA_FILE)."""
    endpoint = settings.mqtt
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=settings.mqtt_ca_file, cert_reqs=ssl.CERT_REQUIRED)


def new_client(
    settings: Settings, client_id: str, *, persistent: bool = False, manual_ack: bool = False
) -> mqtt.Client:
    """A paho client speaking the configured protocol; `persistent` keeps the session
    (and the QoS-1 messages queued for it) while the client is away."""
    protocol = protocol_of(settings.mqtt_protocol)
    extra = {} if protocol is MQTTProtocolVersion.MQTTv5 else {"clean_session": not persistent}
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        manual_ack=manual_ack,
        **extra,  # type: ignore[arg-type]
    )
    configure_client(client, settings)
    return client


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
    properties = Properties(PacketTypes.CONNECT)
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
