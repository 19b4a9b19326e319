"""MQTT client set-up shared by every service: credentials and TLS from the settings."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt

from services.core.settings import Settings


def configure_client(client: mqtt.Client, settings: Settings) -> None:
    """Apply CPM_MQTT_URL's credentials and, for mqtts://, TLS (CPM_MQTT_CA_FILE)."""
    endpoint = settings.mqtt
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set(ca_certs=settings.mqtt_ca_file, cert_reqs=ssl.CERT_REQUIRED)
