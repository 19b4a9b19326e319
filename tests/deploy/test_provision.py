"""`cpmon devices provision` / `revoke`: the dynamic-security file, rotation, the
installers' CSV and the TLS certificates (the broker itself: test_broker_security.py)."""

from __future__ import annotations

import csv
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from services.cli import main
from services.deploy.dynsec import CONFIG_NAME, StoredClient, read_clients
from services.deploy.provision import env_name, provision, revoke
from services.deploy.tls import provision_tls


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["username"]: row for row in csv.DictReader(handle)}


def read_config(directory: Path) -> dict[str, Any]:
    return json.loads((directory / CONFIG_NAME).read_text())


def test_stored_hash_is_what_the_plugin_reads() -> None:
    stored = StoredClient.from_password("s3cret", salt=b"0123456789ab")
    assert (stored.salt, stored.iterations) == ("MDEyMzQ1Njc4OWFi", 101)
    assert len(stored.password) == 88  # base64 of a 64-byte PBKDF2-SHA512
    assert stored.verifies("s3cret")
    assert not stored.verifies("s3cret!")


def test_provision_creates_devices_and_services(tmp_path: Path) -> None:
    result = provision(tmp_path, "cpm/v1", ["cp-002", "cp-001"])
    assert result.created == [
        "cpm-health", "cpm-admin", "cpm-ingest-1", "cpm-ingest-2",
        "cpm-alerts-1", "cpm-alerts-2", "cp-001", "cp-002",
    ]  # fmt: skip
    stored = read_clients(tmp_path / CONFIG_NAME)
    rows = read_csv(tmp_path / "credentials.csv")
    assert set(stored) == set(rows) == set(result.created)
    for username, row in rows.items():
        assert stored[username].verifies(row["password"])
        assert row["client_id"] == username
    assert rows["cp-001"]["publish_under"] == "cpm/v1/cp/cp-001/"
    assert rows["cp-001"]["alerts_topic"] == "cpm/v1/alerts/cp-001"
    assert rows["cpm-ingest-1"]["role"] == "service"
    env_lines = (tmp_path / "services.env").read_text().splitlines()
    assert f"MQTT_INGEST_1_PASSWORD={rows['cpm-ingest-1']['password']}" in env_lines
    assert len({row["password"] for row in rows.values()}) == len(rows)
    for private in (CONFIG_NAME, "credentials.csv", "services.env"):
        assert (tmp_path / private).stat().st_mode & 0o077 == 0
    config_text = (tmp_path / CONFIG_NAME).read_text()
    assert not [name for name, row in rows.items() if row["password"] in config_text]


def test_every_account_is_bound_to_its_client_id_and_denied_by_default(tmp_path: Path) -> None:
    provision(tmp_path, "cpm/v1", ["cp-001"])
    config = read_config(tmp_path)
    assert config["defaultACLAccess"] == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }
    for client in config["clients"]:
        assert client["clientid"] == client["username"]
        (role,) = client["roles"]  # one role, its own, and it exists
        assert role["rolename"].endswith(":" + client["username"])
        assert role["rolename"] in {r["rolename"] for r in config["roles"]}
    device = next(r for r in config["roles"] if r["rolename"] == "device:cp-001")
    sends = sorted(acl["topic"] for acl in device["acls"] if acl["acltype"] == "publishClientSend")
    assert sends == [f"cpm/v1/cp/cp-001/{kind}" for kind in
                     ("duty", "entry", "heartbeat", "reading", "status")]  # fmt: skip
    subscribes = [acl for acl in device["acls"] if acl["acltype"].startswith("subscribe")]
    assert subscribes == [
        {"acltype": "subscribeLiteral", "topic": "cpm/v1/alerts/cp-001", "priority": 0,
         "allow": True}
    ]  # fmt: skip
    # no wildcard anywhere in what a device may publish or subscribe to
    assert not any("#" in acl["topic"] or "+" in acl["topic"] for acl in device["acls"])
    share = "$share/ingest/cpm/v1/cp/#"
    holders = {r["rolename"] for r in config["roles"] for acl in r["acls"] if acl["topic"] == share}
    assert holders == {"service:cpm-ingest-1", "service:cpm-ingest-2"}


def test_rerun_rotates_only_the_named_device(tmp_path: Path) -> None:
    provision(tmp_path, "cpm/v1", ["cp-001", "cp-007", "cp-009"])
    before = read_clients(tmp_path / CONFIG_NAME)
    before_rows = read_csv(tmp_path / "credentials.csv")

    result = provision(tmp_path, "cpm/v1", ["cp-001", "cp-007", "cp-009", "cp-010"],
                       rotate=["cp-007"])  # fmt: skip
    assert result.rotated == ["cp-007"]
    assert result.created == ["cp-010"]
    after = read_clients(tmp_path / CONFIG_NAME)
    after_rows = read_csv(tmp_path / "credentials.csv")
    for untouched in ("cp-001", "cp-009", "cpm-ingest-1", "cpm-alerts-2", "cpm-admin"):
        assert after[untouched] == before[untouched]
        assert after_rows[untouched] == before_rows[untouched]
    assert after["cp-007"] != before["cp-007"]
    assert after["cp-007"].verifies(after_rows["cp-007"]["password"])
    assert not after["cp-007"].verifies(before_rows["cp-007"]["password"])
    # a checkpoint left out of a later run keeps its account
    provision(tmp_path, "cpm/v1", ["cp-010"])
    assert "cp-001" in read_clients(tmp_path / CONFIG_NAME)


def test_revocation_disables_and_rotation_restores(tmp_path: Path) -> None:
    provision(tmp_path, "cpm/v1", ["cp-001", "cp-007"])
    revoke(tmp_path, "cpm/v1", ["cp-007"])
    stored = read_clients(tmp_path / CONFIG_NAME)
    assert stored["cp-007"].disabled and not stored["cp-001"].disabled
    assert read_csv(tmp_path / "credentials.csv")["cp-007"]["password"] == ""
    provision(tmp_path, "cpm/v1", ["cp-001", "cp-007"], rotate=["cp-007"])
    stored = read_clients(tmp_path / CONFIG_NAME)
    assert not stored["cp-007"].disabled
    assert stored["cp-007"].verifies(read_csv(tmp_path / "credentials.csv")["cp-007"]["password"])
    with pytest.raises(ValueError, match="cannot revoke unknown"):
        revoke(tmp_path, "cpm/v1", ["cp-404"])


def test_more_replicas_are_added_and_never_dropped(tmp_path: Path) -> None:
    provision(tmp_path, "cpm/v1", ["cp-001"], replicas=3)
    provision(tmp_path, "cpm/v1", ["cp-001"])  # the default, 2, does not remove the third
    rows = read_csv(tmp_path / "credentials.csv")
    assert {"cpm-ingest-3", "cpm-alerts-3"} <= set(rows)
    assert rows["cpm-ingest-3"]["role"] == "service"


@pytest.mark.parametrize(
    "hostile",
    ["cp/001", "cp-+", "#", "cp-001/#", "", "a" * 65, "cpm-ingest-1", "cpm-admin", "cpm-x",
     "cp 1", "cp-\u0000"],
)  # fmt: skip
def test_provision_refuses_hostile_checkpoint_ids(tmp_path: Path, hostile: str) -> None:
    with pytest.raises(ValueError):
        provision(tmp_path, "cpm/v1", [hostile])
    assert not (tmp_path / CONFIG_NAME).exists()


def test_provision_refuses_rotating_unknown_accounts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot rotate unknown"):
        provision(tmp_path, "cpm/v1", ["cp-001"], rotate=["cp-404"])


def test_tls_certificates_chain_to_the_ca_and_name_the_hosts(tmp_path: Path) -> None:
    files = provision_tls(tmp_path, ["mqtt.example.org", "10.0.0.5"])
    cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mqtt.example.org"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca_cert.read_bytes()))
    for key in (files.ca_key, files.server_key):
        assert key.stat().st_mode & 0o077 == 0
    context = ssl.create_default_context(cafile=str(files.ca_cert))  # a valid CA bundle
    assert context.cert_store_stats()["x509_ca"] == 1
    # a second run keeps the CA and the certificate; a renewal keeps the CA only
    ca_before, cert_before = files.ca_cert.read_bytes(), files.server_cert.read_bytes()
    provision_tls(tmp_path, ["mqtt.example.org"])
    assert files.server_cert.read_bytes() == cert_before
    provision_tls(tmp_path, ["mqtt.example.org"], renew_server=True)
    assert files.ca_cert.read_bytes() == ca_before
    assert files.server_cert.read_bytes() != cert_before


def test_cli_provisions_all_checkpoints_of_the_registry(
    seeded_engine: object, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from services.core.settings import get_settings

    monkeypatch.setenv("CPM_DATABASE_URL", database_url)
    monkeypatch.setenv("CPM_DEMO_MODE", "true")
    get_settings.cache_clear()
    out = str(tmp_path / "secrets")
    try:
        assert main(["devices", "provision", "--checkpoints", "all", "--out", out,
                     "--tls-hosts", "localhost"]) == 0  # fmt: skip
        assert "108 created" in capsys.readouterr().out
        assert main(["devices", "provision", "--checkpoints", "all", "--out", out,
                     "--rotate", "cp-007"]) == 0  # fmt: skip
        assert "1 rotated (cp-007)" in capsys.readouterr().out
        assert main(["devices", "provision", "--checkpoints", "all", "--out", out,
                     "--rotate", "cp-999"]) == 2  # fmt: skip
        assert "cannot rotate unknown account(s): cp-999" in capsys.readouterr().err
        assert main(["devices", "revoke", "cp-007", "--out", out]) == 0
        assert "revoked cp-007" in capsys.readouterr().out
        assert main(["devices", "revoke", "cp-007", "--out", out, "--apply",
                     "mqtt://cp-007:x@127.0.0.1:1"]) == 2  # fmt: skip
        assert "cpm-admin" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    rows = read_csv(tmp_path / "secrets" / "credentials.csv")
    assert sum(row["role"] == "device" for row in rows.values()) == 102
    assert (tmp_path / "secrets" / "certs" / "ca.crt").exists()


def test_env_names_match_compose() -> None:
    compose = (Path(__file__).parents[2] / "docker-compose.yml").read_text()
    for username in ("cpm-ingest-1", "cpm-ingest-2", "cpm-alerts-1", "cpm-health"):
        assert "${" + env_name(username) in compose


def test_the_simulator_logs_each_checkpoint_in_as_its_own_account(tmp_path: Path) -> None:
    from devices.simulator.network import device_client_id, read_credentials

    provision(tmp_path, "cpm/v1", ["cp-001", "cp-002"])
    revoke(tmp_path, "cpm/v1", ["cp-002"])
    credentials = read_credentials(tmp_path / "credentials.csv")
    assert set(credentials) == {"cp-001"}  # a revoked device has no password to use
    assert device_client_id("cp-001", credentials, "sim-{checkpoint_id}") == "cp-001"
    assert device_client_id("cp-002", credentials, "sim-{checkpoint_id}") == "sim-cp-002"
