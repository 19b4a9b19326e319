"""`cpmon devices provision` and `cpmon devices revoke`: the broker's accounts.

Writes into one directory:
- `dynamic-security.json`: Mosquitto's dynamic-security configuration (hashed
  passwords, each account bound to its client id, one role per account, default deny):
  the one source of truth for who may connect and what they may do (dynsec.py);
- `credentials.csv`: username, password, client id and topics, for the installers;
- `services.env`: the service accounts' passwords as env lines for docker compose.

Re-running keeps every existing account as it is and only adds missing ones; `rotate`
names the accounts that get a new password; `revoke` disables an account. With a
`ControlClient` the same changes are made on the running broker at once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from services.core.protocol import CHECKPOINT_ID_RE, alerts_topic
from services.deploy.acl import Account, device_account, service_accounts
from services.deploy.dynsec import (
    CONFIG_NAME,
    ControlClient,
    StoredClient,
    create_commands,
    disable_command,
    enable_command,
    new_password,
    read_clients,
    render_config,
    set_password_command,
)

_REPLICA_RE = re.compile(r"^cpm-(?:ingest|alerts)-(\d+)$")
CSV_FIELDS = ("username", "password", "client_id", "role", "publish_under", "alerts_topic")


@dataclass
class ProvisionResult:
    created: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)


def env_name(username: str) -> str:
    """`cpm-ingest-1` -> `MQTT_INGEST_1_PASSWORD` (the names docker-compose.yml uses)."""
    return "MQTT_" + username.removeprefix("cpm-").upper().replace("-", "_") + "_PASSWORD"


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["username"]: row for row in csv.DictReader(handle)}


def write_private(path: Path, text: str) -> None:
    """Write atomically, readable by the owner only (it holds credentials)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def _csv_row(account: Account, password: str, prefix: str) -> dict[str, str]:
    device = account.kind == "device"
    return {
        "username": account.username,
        "password": password,
        "client_id": account.client_id,
        "role": account.kind,
        "publish_under": f"{prefix}/cp/{account.username}/" if device else "",
        "alerts_topic": alerts_topic(prefix, account.username) if device else "",
    }


class Secrets:
    """The provisioned directory: read, changed in memory, written back together."""

    def __init__(self, out_dir: Path, prefix: str, replicas: int = 2) -> None:
        self.out_dir = out_dir
        self.prefix = prefix.strip("/")
        self.stored = read_clients(out_dir / CONFIG_NAME)
        # never fewer replicas than were provisioned before: their accounts stay
        existing = [int(m[1]) for name in self.stored if (m := _REPLICA_RE.match(name))]
        replicas = max([replicas, *existing])
        self.services = {a.username: a for a in service_accounts(self.prefix, replicas)}
        self.rows = _read_csv(out_dir / "credentials.csv")

    def account(self, username: str) -> Account:
        return self.services.get(username) or device_account(self.prefix, username)

    def accounts(self) -> list[Account]:
        """Services first, then every device this directory has ever held."""
        devices = sorted(name for name in self.stored if name not in self.services)
        return [*self.services.values(), *(device_account(self.prefix, d) for d in devices)]

    def set_password(self, username: str) -> str:
        password = new_password()
        self.stored[username] = StoredClient.from_password(password)
        self.rows[username] = _csv_row(self.account(username), password, self.prefix)
        return password

    def write(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        accounts = self.accounts()
        write_private(self.out_dir / CONFIG_NAME, render_config(accounts, self.stored))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for account in accounts:
            row = self.rows.get(account.username, {})
            writer.writerow({key: row.get(key, "") for key in CSV_FIELDS})
        write_private(self.out_dir / "credentials.csv", buffer.getvalue())
        env_lines = [
            f"{env_name(name)}={self.rows[name]['password']}\n"
            for name in self.services
            if self.rows.get(name, {}).get("password")
        ]
        write_private(self.out_dir / "services.env", "".join(env_lines))


def provision(
    out_dir: Path,
    prefix: str,
    checkpoint_ids: Iterable[str],
    rotate: Iterable[str] = (),
    replicas: int = 2,
    control: ControlClient | None = None,
) -> ProvisionResult:
    """Create or update the accounts in `out_dir` (and on the broker behind `control`)."""
    secrets = Secrets(out_dir, prefix, replicas)
    checkpoints = sorted(set(checkpoint_ids))
    for checkpoint_id in checkpoints:
        if not CHECKPOINT_ID_RE.match(checkpoint_id):
            raise ValueError(f"{checkpoint_id!r} is not a valid checkpoint id ([A-Za-z0-9_-])")
        if checkpoint_id in secrets.services or checkpoint_id.startswith("cpm-"):
            raise ValueError(f"checkpoint id {checkpoint_id!r} collides with a service account")
    wanted = [*secrets.services, *checkpoints]
    rotate_set = set(rotate)
    unknown = rotate_set - set(wanted) - set(secrets.stored)
    if unknown:
        raise ValueError(f"cannot rotate unknown account(s): {', '.join(sorted(unknown))}")

    result = ProvisionResult()
    commands = []
    for username in [*wanted, *sorted(rotate_set - set(wanted))]:
        existing = secrets.stored.get(username)
        if existing is not None and username not in rotate_set:
            result.kept.append(username)
            continue
        password = secrets.set_password(username)
        if existing is None:
            result.created.append(username)
            commands += create_commands(secrets.account(username), password)
        else:
            # a rotation also lifts a revocation: the stolen password is gone
            result.rotated.append(username)
            commands.append(set_password_command(username, password))
            if existing.disabled:
                commands.append(enable_command(username))
    # Accounts not named this time (a checkpoint left out) stay as they are.
    secrets.write()
    if control is not None:
        control.run(commands)
    return result


def revoke(
    out_dir: Path, prefix: str, usernames: Iterable[str], control: ControlClient | None = None
) -> ProvisionResult:
    """Disable accounts (a stolen device): refused from now on, its CSV password erased.
    `provision --rotate` gives the account a new password and enables it again."""
    secrets = Secrets(out_dir, prefix)
    names = sorted(set(usernames))
    unknown = [name for name in names if name not in secrets.stored]
    if unknown:
        raise ValueError(f"cannot revoke unknown account(s): {', '.join(unknown)}")
    for name in names:
        old = secrets.stored[name]
        secrets.stored[name] = StoredClient(old.password, old.salt, old.iterations, True)
        secrets.rows.setdefault(name, _csv_row(secrets.account(name), "", secrets.prefix))
        secrets.rows[name]["password"] = ""
    secrets.write()
    if control is not None:
        control.run([disable_command(name) for name in names])
    return ProvisionResult(revoked=names)
