"""`cpmon devices provision`: broker credentials for every checkpoint and service.

Writes into one directory:
- `passwd`: Mosquitto password file (`$7$` PBKDF2-SHA512 hashes),
- `acl`: the access-control list for the topic prefix,
- `credentials.csv`: username, password and topics, for the installers,
- `services.env`: the service accounts' passwords as env lines for docker compose.

Re-running keeps every existing account as it is and only adds missing ones; `rotate`
names the accounts that get a new password.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from services.core.protocol import CHECKPOINT_ID_RE, alerts_topic
from services.deploy.acl import render_acl, service_accounts
from services.deploy.passwords import (
    hash_password,
    new_password,
    read_password_file,
    write_password_file,
)

CSV_FIELDS = ("username", "password", "role", "publish_under", "alerts_topic")


@dataclass
class ProvisionResult:
    created: list[str] = field(default_factory=list)
    rotated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def env_name(username: str) -> str:
    """`cpm-ingest` -> `MQTT_INGEST_PASSWORD` (the names docker-compose.yml uses)."""
    return "MQTT_" + username.removeprefix("cpm-").upper().replace("-", "_") + "_PASSWORD"


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["username"]: row for row in csv.DictReader(handle)}


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def provision(
    out_dir: Path,
    prefix: str,
    checkpoint_ids: Iterable[str],
    rotate: Iterable[str] = (),
    with_simulator: bool = False,
) -> ProvisionResult:
    """Create or update the credentials in `out_dir`; see the module docstring."""
    prefix = prefix.strip("/")
    checkpoints = sorted(set(checkpoint_ids))
    services = {account.username: account for account in service_accounts(with_simulator)}
    for checkpoint_id in checkpoints:
        if not CHECKPOINT_ID_RE.match(checkpoint_id):
            raise ValueError(f"{checkpoint_id!r} is not a valid checkpoint id ([A-Za-z0-9_-])")
        if checkpoint_id in services:
            raise ValueError(f"checkpoint id {checkpoint_id!r} collides with a service account")
    out_dir.mkdir(parents=True, exist_ok=True)
    passwd_path, csv_path = out_dir / "passwd", out_dir / "credentials.csv"
    hashes = read_password_file(passwd_path)
    rows = _read_csv(csv_path)
    wanted = [*services, *checkpoints]
    rotate_set = set(rotate)
    unknown = rotate_set - set(wanted) - set(hashes)
    if unknown:
        raise ValueError(f"cannot rotate unknown account(s): {', '.join(sorted(unknown))}")

    result = ProvisionResult()
    for username in wanted:
        if username in hashes and username not in rotate_set:
            result.kept.append(username)
            continue
        password = new_password()
        (result.rotated if username in hashes else result.created).append(username)
        hashes[username] = hash_password(password)
        if username in services:
            rows[username] = {
                "username": username,
                "password": password,
                "role": "service",
                "publish_under": "",
                "alerts_topic": "",
            }
        else:
            rows[username] = {
                "username": username,
                "password": password,
                "role": "device",
                "publish_under": f"{prefix}/cp/{username}/",
                "alerts_topic": alerts_topic(prefix, username),
            }
    # Accounts outside `wanted` (a checkpoint not named this time) stay as they are.
    write_password_file(passwd_path, hashes)
    (out_dir / "acl").write_text(render_acl(prefix, with_simulator), encoding="utf-8")

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for username in sorted(rows, key=lambda name: (name not in services, name)):
        writer.writerow({key: rows[username].get(key, "") for key in CSV_FIELDS})
    _write_private(csv_path, buffer.getvalue())
    env_lines = [
        f"{env_name(name)}={rows[name]['password']}\n"
        for name in services
        if rows.get(name, {}).get("password")
    ]
    _write_private(out_dir / "services.env", "".join(env_lines))
    return result
