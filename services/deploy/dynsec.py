"""Mosquitto's dynamic-security plugin: its configuration file, and live changes.

`render_config` turns the accounts of acl.py into the JSON file the plugin loads at
start (`plugin_opt_config_file`): one client per account, bound to its client id, one
role per account with its ACLs, everything else denied. It is the one source of truth
for the broker's accounts; the plugin rewrites the same file when it is changed live.

`ControlClient` changes a running broker through `$CONTROL/dynamic-security/v1`
(what `mosquitto_ctrl dynsec` does): a rotation or revocation takes effect at once,
without a restart, and the broker saves it into its file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import secrets
import ssl
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from services.core.settings import MqttEndpoint
from services.deploy.acl import ADMIN_USERNAME, CONTROL_TOPIC, Account

CONFIG_NAME = "dynamic-security.json"
# What the plugin stores: PBKDF2-HMAC-SHA512, a 12-byte salt, a 64-byte hash. The
# passwords are random 32-character tokens, so the iteration count buys nothing here.
ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64

DEFAULT_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}


def new_password() -> str:
    """A random password that survives URLs, CSV and shell quoting unescaped."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class StoredClient:
    """A client entry as the plugin keeps it: the hash, never the password."""

    password: str  # base64 PBKDF2 hash
    salt: str  # base64
    iterations: int
    disabled: bool = False

    @classmethod
    def from_password(cls, password: str, salt: bytes | None = None) -> StoredClient:
        salt = salt if salt is not None else os.urandom(SALT_BYTES)
        digest = hashlib.pbkdf2_hmac(
            "sha512", password.encode("utf-8"), salt, ITERATIONS, HASH_BYTES
        )
        return cls(
            base64.b64encode(digest).decode("ascii"),
            base64.b64encode(salt).decode("ascii"),
            ITERATIONS,
        )

    def verifies(self, password: str) -> bool:
        salt = base64.b64decode(self.salt)
        digest = hashlib.pbkdf2_hmac(
            "sha512", password.encode("utf-8"), salt, self.iterations, HASH_BYTES
        )
        return base64.b64encode(digest).decode("ascii") == self.password


def read_clients(path: Path) -> dict[str, StoredClient]:
    """username -> stored client of an existing configuration (empty when missing)."""
    if not path.exists():
        return {}
    config = json.loads(path.read_text(encoding="utf-8"))
    clients: dict[str, StoredClient] = {}
    for entry in config.get("clients", []):
        if not {"username", "password", "salt", "iterations"} <= entry.keys():
            continue  # an account without a password cannot log in: provision anew
        clients[entry["username"]] = StoredClient(
            entry["password"],
            entry["salt"],
            int(entry["iterations"]),
            bool(entry.get("disabled", False)),
        )
    return clients


def role_of(account: Account) -> dict[str, Any]:
    return {
        "rolename": account.rolename,
        "textdescription": account.purpose,
        "acls": [
            {"acltype": acl.acltype, "topic": acl.topic, "priority": 0, "allow": acl.allow}
            for acl in account.acls
        ],
    }


def client_of(account: Account, stored: StoredClient) -> dict[str, Any]:
    return {
        "username": account.username,
        "clientid": account.client_id,
        "textdescription": account.purpose,
        "password": stored.password,
        "salt": stored.salt,
        "iterations": stored.iterations,
        "disabled": stored.disabled,
        "roles": [{"rolename": account.rolename}],
        "groups": [],
    }


def render_config(accounts: Iterable[Account], stored: dict[str, StoredClient]) -> str:
    """The plugin's configuration: every account in `accounts` must have a stored hash."""
    ordered = list(accounts)
    config = {
        "defaultACLAccess": DEFAULT_ACCESS,
        "clients": [client_of(account, stored[account.username]) for account in ordered],
        "groups": [],
        "roles": [role_of(account) for account in ordered],
    }
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


class ControlError(RuntimeError):
    """The broker refused or did not answer a dynamic-security command."""


class ControlClient:
    """Sends dynamic-security commands to a running broker as the admin account."""

    def __init__(self, url: str, ca_file: str | None = None, timeout_s: float = 10.0) -> None:
        endpoint = MqttEndpoint(url)
        if endpoint.username != ADMIN_USERNAME or not endpoint.password:
            raise ControlError(f"give the {ADMIN_USERNAME} account and its password in the URL")
        self.timeout_s = timeout_s
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._connected: queue.Queue[bool] = queue.Queue()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=ADMIN_USERNAME, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(endpoint.username, endpoint.password)
        if endpoint.tls:
            client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_message = lambda _c, _u, message: self._answers.put(json.loads(message.payload))
        self.client = client
        self.endpoint = endpoint

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._connected.put(False)
            return
        client.subscribe(f"{CONTROL_TOPIC}/response", qos=1)
        self._connected.put(True)

    def __enter__(self) -> ControlClient:
        try:
            self.client.connect(self.endpoint.host, self.endpoint.port, keepalive=30)
        except OSError as exc:
            raise ControlError(f"cannot reach the broker at {self.endpoint!r}: {exc}") from exc
        self.client.loop_start()
        try:
            if not self._connected.get(timeout=self.timeout_s):
                raise ControlError(f"the broker at {self.endpoint!r} refused {ADMIN_USERNAME}")
        except queue.Empty as exc:
            raise ControlError(f"no answer from the broker at {self.endpoint!r}") from exc
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def run(self, commands: list[dict[str, Any]]) -> None:
        """Send the commands in one message; raise ControlError naming any that failed."""
        if not commands:
            return
        correlation = uuid.uuid4().hex
        for command in commands:
            command["correlationData"] = correlation
        self.client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)
        errors = []
        answered = 0
        while answered < len(commands):
            try:
                reply = self._answers.get(timeout=self.timeout_s)
            except queue.Empty as exc:
                raise ControlError("the broker did not answer (is the plugin loaded?)") from exc
            for response in reply.get("responses", []):
                if response.get("correlationData") != correlation:
                    continue
                answered += 1
                if response.get("error"):
                    errors.append(f"{response.get('command')}: {response['error']}")
        if errors:
            raise ControlError("; ".join(errors))


def create_commands(account: Account, password: str) -> list[dict[str, Any]]:
    """Create the account's role and the account itself on a running broker."""
    role = role_of(account)
    return [
        {"command": "createRole", "rolename": role["rolename"], "acls": role["acls"]},
        {
            "command": "createClient",
            "username": account.username,
            "password": password,
            "clientid": account.client_id,
            "roles": [{"rolename": account.rolename}],
        },
    ]


def set_password_command(username: str, password: str) -> dict[str, Any]:
    # The broker disconnects the client: it must come back with the new password.
    return {"command": "setClientPassword", "username": username, "password": password}


def disable_command(username: str) -> dict[str, Any]:
    # The broker disconnects the client at once and refuses it from then on.
    return {"command": "disableClient", "username": username}


def enable_command(username: str) -> dict[str, Any]:
    return {"command": "enableClient", "username": username}
