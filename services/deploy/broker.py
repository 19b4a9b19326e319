"""Which broker `cpmon up` uses: the configured one, or one it starts itself.

- The broker in CPM_MQTT_URL answers: use it.
- Nothing answers at a loopback address: start one there, `mosquitto` with the
  project's delivery settings when installed, else the embedded amqtt broker.
- Nothing answers at another address: that is an operator's broker that is down;
  say so rather than start a different one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from services.core.settings import Settings
from services.deploy.mosquitto import (
    adapt_config,
    mosquitto_binary,
    port_answers,
    project_config_text,
)
from services.deploy.supervisor import ChildSpec

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# amqtt keeps nothing for anonymous sessions: the services log in under this name.
EMBEDDED_USERNAME = "cpm-demo"


class BrokerUnavailable(RuntimeError):
    pass


@dataclass
class BrokerPlan:
    kind: str  # "configured", "mosquitto" or "amqtt"
    host: str
    port: int
    process: ChildSpec | None = None
    env: dict[str, str] = field(default_factory=dict)  # for every service child

    def describe(self) -> str:
        where = f"{self.host}:{self.port}"
        return {
            "configured": f"the broker at {where} (from CPM_MQTT_URL)",
            "mosquitto": f"mosquitto on {where}, started for this run",
            "amqtt": f"the embedded amqtt broker on {where} (MQTT 3.1.1, no shared groups)",
        }[self.kind]


def plan_broker(
    settings: Settings,
    state_dir: Path,
    *,
    mosquitto: str | None = None,
    use_mosquitto: bool = True,
    python: str = sys.executable,
) -> BrokerPlan:
    endpoint = settings.mqtt
    if port_answers(endpoint.host, endpoint.port):
        return BrokerPlan("configured", endpoint.host, endpoint.port)
    if endpoint.host not in LOOPBACK:
        raise BrokerUnavailable(
            f"no MQTT broker answers at {endpoint!r} (CPM_MQTT_URL). Start it, or unset "
            "CPM_MQTT_URL to let `cpmon up` run a local one."
        )
    if endpoint.tls:
        raise BrokerUnavailable(
            f"no MQTT broker answers at {endpoint!r}; `cpmon up` starts local brokers "
            "without TLS only: use mqtt:// for a local demo."
        )
    binary = (mosquitto or mosquitto_binary()) if use_mosquitto else None
    if binary is not None:
        data_dir = state_dir / "mosquitto"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = adapt_config(
            project_config_text(), port=endpoint.port, data_dir=data_dir.resolve(),
            bind=endpoint.host,
        )  # fmt: skip
        config_path = data_dir / "mosquitto.conf"
        config_path.write_text(config, encoding="utf-8")
        spec = ChildSpec("broker", [binary, "-c", str(config_path.resolve())], tier=0)
        return BrokerPlan("mosquitto", endpoint.host, endpoint.port, spec)
    spec = ChildSpec(
        "broker",
        [python, "-m", "services.deploy.embedded_broker", "--host", endpoint.host,
         "--port", str(endpoint.port)],
        tier=0,
    )  # fmt: skip
    user = quote(endpoint.username or EMBEDDED_USERNAME, safe="")
    password = f":{quote(endpoint.password, safe='')}" if endpoint.password else ""
    env = {
        "CPM_MQTT_URL": f"mqtt://{user}{password}@{endpoint.host}:{endpoint.port}",
        "CPM_MQTT_PROTOCOL": "3.1.1",
        "CPM_INGEST_SHARED_GROUP": "",
    }
    return BrokerPlan("amqtt", endpoint.host, endpoint.port, spec, env)
