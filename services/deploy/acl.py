"""Who may do what on the broker: every account, its client id and its rights.

Pure data, rendered into Mosquitto's dynamic-security configuration by dynsec.py.
Three rules hold for every account (docs/architecture.md, "The broker"):

- **identity**: each account may connect with exactly one client id, its username, so
  no credential can take over another client's session (a device cp-001 cannot connect
  as `cpm-ingest-1` or `cp-002`). Every service process has an account of its own.
- **subscriptions are authorised at SUBSCRIBE time** (the plugin checks the filter
  itself, `$share/...` included), so only ingest accounts can join the ingest group.
- **least privilege**: a device publishes exactly the five topics of protocol v1 on
  its own checkpoint and reads only its own alerts.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core.protocol import INGEST_GROUP, MESSAGE_TYPES, alerts_topic, committed_topic

ADMIN_USERNAME = "cpm-admin"
HEALTH_USERNAME = "cpm-health"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"


@dataclass(frozen=True, slots=True)
class Acl:
    """One dynamic-security ACL entry (`acltype` as the plugin names it)."""

    acltype: str  # publishClientSend | publishClientReceive | subscribePattern | ...
    topic: str
    allow: bool = True


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    kind: str  # device | service | admin
    purpose: str
    acls: tuple[Acl, ...]

    @property
    def client_id(self) -> str:
        # One account, one client id: the username. A second connection with the same
        # credentials replaces the first (as MQTT says), but never anyone else's.
        return self.username

    @property
    def rolename(self) -> str:
        return f"{self.kind}:{self.username}"


def _send(topic: str) -> Acl:
    return Acl("publishClientSend", topic)


def _read(topic: str) -> tuple[Acl, Acl]:
    """Subscribe to `topic` and be delivered what matches it."""
    return Acl("subscribePattern", topic), Acl("publishClientReceive", topic)


def _status(prefix: str, username: str) -> Acl:
    # A service announces itself (retained status and will) on its own topic only.
    return _send(f"{prefix}/services/{username}/status")


def device_topics(prefix: str, checkpoint_id: str) -> list[str]:
    """The five topics of protocol v1 a checkpoint publishes, nothing wider."""
    return [f"{prefix}/cp/{checkpoint_id}/{kind}" for kind in MESSAGE_TYPES]


def device_account(prefix: str, checkpoint_id: str) -> Account:
    alerts = alerts_topic(prefix, checkpoint_id)
    acls = tuple(_send(topic) for topic in device_topics(prefix, checkpoint_id))
    return Account(
        checkpoint_id,
        "device",
        f"checkpoint {checkpoint_id}: its five topics, its own alerts",
        (*acls, Acl("subscribeLiteral", alerts), Acl("publishClientReceive", alerts)),
    )


def ingest_account(prefix: str, replica: int) -> Account:
    devices = f"{prefix}/cp/#"
    username = f"cpm-ingest-{replica}"
    return Account(
        username,
        "service",
        f"ingest replica {replica}: reads every device topic, alone or in the ingest group",
        (
            Acl("subscribePattern", devices),
            Acl("subscribePattern", f"$share/{INGEST_GROUP}/{devices}"),
            Acl("publishClientReceive", devices),
            _send(committed_topic(prefix)),
            _status(prefix, username),
        ),
    )


def alerts_account(prefix: str, replica: int) -> Account:
    username = f"cpm-alerts-{replica}"
    return Account(
        username,
        "service",
        f"alerts replica {replica}: wakes on commits, publishes alerts to the checkpoints",
        (*_read(committed_topic(prefix)), _send(f"{prefix}/alerts/+"), _status(prefix, username)),
    )


def health_account() -> Account:
    return Account(
        HEALTH_USERNAME,
        "service",
        "container health check: reads the broker's uptime, nothing else",
        _read("$SYS/broker/uptime"),
    )


def admin_account() -> Account:
    """Drives the dynamic-security plugin (live rotation and revocation)."""
    return Account(
        ADMIN_USERNAME,
        "admin",
        "operators: changes accounts on the running broker ($CONTROL)",
        (_send(CONTROL_TOPIC), *_read(f"{CONTROL_TOPIC}/response")),
    )


def service_accounts(prefix: str, replicas: int = 2) -> list[Account]:
    """Every service process's account: `replicas` each of ingest and alerts. The API
    speaks no MQTT (its readiness probe only opens a TCP connection): no account."""
    if replicas < 1:
        raise ValueError("at least one replica of each service")
    accounts = [health_account(), admin_account()]
    for make in (ingest_account, alerts_account):
        accounts += [make(prefix, n) for n in range(1, replicas + 1)]
    return accounts
