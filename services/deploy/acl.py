"""The broker's access-control list, rendered for a topic prefix.

Devices log in with their checkpoint id as username, so two Mosquitto `pattern` lines
(`%u` = the username) confine every device to its own topics without a per-device
block; the services get named accounts with their own rights.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    username: str
    purpose: str
    rights: tuple[str, ...]  # ACL lines with {prefix} placeholders


# Every service announces itself (retained status and MQTT will) under services/.
_STATUS = "topic write {prefix}/services/#"

SERVICE_ACCOUNTS: tuple[ServiceAccount, ...] = (
    ServiceAccount(
        "cpm-ingest",
        "ingest: reads every device topic, announces commits",
        ("topic read {prefix}/#", "topic write {prefix}/internal/committed", _STATUS),
    ),
    ServiceAccount(
        "cpm-alerts",
        "alerts: reads everything, publishes alerts to the checkpoints",
        ("topic read {prefix}/#", "topic write {prefix}/alerts/#", _STATUS),
    ),
    ServiceAccount(
        "cpm-api",
        "API: reads everything (live board); broker statistics for health checks",
        ("topic read {prefix}/#", _STATUS, "topic read $SYS/broker/#"),
    ),
)

# Only for demos: it speaks for every checkpoint at once.
SIMULATOR_ACCOUNT = ServiceAccount(
    "cpm-simulator",
    "simulator (demo only): publishes as every checkpoint",
    ("topic write {prefix}/cp/#", "topic read {prefix}/alerts/#"),
)


def service_accounts(with_simulator: bool) -> tuple[ServiceAccount, ...]:
    return (*SERVICE_ACCOUNTS, SIMULATOR_ACCOUNT) if with_simulator else SERVICE_ACCOUNTS


def render_acl(prefix: str, with_simulator: bool = False) -> str:
    """The `acl_file` for Mosquitto 2.0."""
    prefix = prefix.strip("/")
    lines = [
        "# Mosquitto ACL for checkpoint-monitor, written by `cpmon devices provision`.",
        f"# Topic prefix: {prefix}. Anything not granted here is denied.",
        "",
        "# Devices: username = checkpoint id. Each may publish only under its own",
        "# checkpoint's topics (its status will included) and read only its own alerts.",
        f"pattern write {prefix}/cp/%u/#",
        f"pattern read {prefix}/alerts/%u",
    ]
    for account in service_accounts(with_simulator):
        lines += ["", f"# {account.purpose}", f"user {account.username}"]
        lines += [right.format(prefix=prefix) for right in account.rights]
    return "\n".join(lines) + "\n"
