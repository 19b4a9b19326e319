"""docker-compose.yml, checked without Docker: structure, commands, ports, volumes, env."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import build_parser
from services.core.settings import Settings

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = [name for name, svc in SERVICES.items() if "CPM_APP_IMAGE" in svc.get("image", "")]
ONE_SHOT = {"migrate", "seed"}
REAL_BINARIES = {"mosquitto_sub", "pg_isready", "python", "CMD", "CMD-SHELL"}


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment must be a mapping"
    return {str(k): str(v) for k, v in env.items()}


def test_the_expected_services_exist() -> None:
    assert {"mosquitto", "postgres", "migrate", "ingest-1", "ingest-2", "alerts", "api",
            "simulator", "retention"} <= set(SERVICES)  # fmt: skip
    # public images by default, the ones scripts/images builds when .env says so
    assert SERVICES["mosquitto"]["image"] == "${CPM_MOSQUITTO_IMAGE:-eclipse-mosquitto:2}"
    assert SERVICES["postgres"]["image"] == "${CPM_POSTGRES_IMAGE:-postgres:16}"
    assert SERVICES["api"]["image"] == "${CPM_APP_IMAGE:-checkpoint-monitor:latest}"
    for name in ("seed", "simulator"):
        assert SERVICES[name]["profiles"] == ["demo"]
    for name in set(SERVICES) - {"seed", "simulator"}:
        assert "profiles" not in SERVICES[name], f"{name} must run without a profile"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_command_is_a_cpmon_sub_command(name: str) -> None:
    command = SERVICES[name]["command"]
    assert command[0] == "cpmon"
    args, unknown = build_parser().parse_known_args(command[1:])
    assert not unknown, f"{name}: unknown arguments {unknown}"
    assert callable(args.func)


def test_only_the_api_and_the_device_mqtt_port_are_published() -> None:
    published = {name: svc["ports"] for name, svc in SERVICES.items() if "ports" in svc}
    assert published == {
        "mosquitto": ["${MQTT_DEVICE_PORT:-8883}:8883"],  # TLS only; 1883 stays inside
        "api": ["${API_PORT:-8000}:8000"],
    }
    assert "--port" in SERVICES["api"]["command"]
    port = SERVICES["api"]["command"][SERVICES["api"]["command"].index("--port") + 1]
    assert port == "8000"
    config = (ROOT / "mosquitto" / "mosquitto.conf").read_text()
    assert "listener 1883" in config
    assert "listener 8883\ncertfile /mosquitto/secrets/certs/server.crt" in config


def test_two_ingest_replicas_share_one_group_with_distinct_ids() -> None:
    replicas = [env_of(SERVICES[name]) for name in ("ingest-1", "ingest-2")]
    assert {env["CPM_INGEST_SHARED_GROUP"] for env in replicas} == {"ingest"}
    assert len({env["CPM_INGEST_CLIENT_ID"] for env in replicas}) == 2
    for env in replicas:  # each its own account, whose username is its client id
        assert env["CPM_MQTT_URL"].startswith(f"mqtt://{env['CPM_INGEST_CLIENT_ID']}:")


def test_environment_names_are_real_settings() -> None:
    settings_env = {f"CPM_{name.upper()}" for name in Settings.model_fields}
    for name in APP_SERVICES:
        for variable in env_of(SERVICES[name]):
            assert variable in settings_env, f"{name}: {variable} is not a setting"
    # .env.example documents every variable the compose file interpolates
    documented = set(re.findall(r"(?m)^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text()))
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    assert used <= documented, f"undocumented: {used - documented}"


def test_volumes_are_named_and_declared_or_project_files() -> None:
    declared = set(COMPOSE["volumes"])
    assert declared == {"mosquitto-data", "pg-data"}
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert target.startswith("/")
            if source.startswith("./"):
                assert (ROOT / source).exists() or source.startswith("./mosquitto/secrets"), (
                    name,
                    source,
                )
            else:
                assert source in declared, (name, source)
    config = (ROOT / "mosquitto" / "mosquitto.conf").read_text()
    assert "persistence_location /mosquitto/data/" in config
    assert "plugin_opt_config_file /mosquitto/secrets/dynamic-security.json" in config
    directives = {line.split()[0] for line in config.splitlines() if line and line[0] != "#"}
    assert not {"acl_file", "password_file"} & directives


def test_health_checks_and_restart_policies() -> None:
    for name in set(SERVICES) - ONE_SHOT:  # every long-running service
        test = SERVICES[name]["healthcheck"]["test"]
        binary = shlex.split(test[1])[0] if test[0] == "CMD-SHELL" else test[1]
        assert binary in REAL_BINARIES, (name, binary)
        if test[1:4] == ["python", "-m", "services.deploy.health"]:
            assert {"--broker", "--database"} & set(test[4:]), name
    for name, svc in SERVICES.items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert svc["restart"] == expected, name
    for name in APP_SERVICES:
        if name != "migrate":
            depends = SERVICES[name]["depends_on"]
            if "migrate" in depends:
                assert depends["migrate"]["condition"] == "service_completed_successfully"
            else:  # the simulator: after the seed, which runs after migrate
                assert depends["seed"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_dockerfile_installs_the_console_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE=python:3.11-slim\nFROM ${BASE}" in dockerfile
    assert "pip install --require-hashes --no-deps -r /tmp/lock.txt" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert "USER 10001:10001" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and "mosquitto/secrets/" in ignored
