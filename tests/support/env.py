"""The test environment: the broker, the ID-hash secret every test database is seeded
with, and free local ports."""

from __future__ import annotations

import os
import socket

TEST_SECRET = "test-secret-0123456789abcdef"
# Webhook receivers of the tests listen on loopback, which the shipped default refuses:
# tests allow it explicitly (CPM_WEBHOOK_ALLOW_HOSTS), and only it.
LOOPBACK_ALLOW = "127.0.0.0/8"
MQTT_URL = os.environ.get("CPM_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
