"""`cpmon devices provision`: Mosquitto's hash format, rotation, the installers' CSV."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from services.cli import main
from services.deploy.acl import render_acl
from services.deploy.passwords import hash_password, read_password_file, verify_password
from services.deploy.provision import env_name, provision


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["username"]: row for row in csv.DictReader(handle)}


def test_hash_has_mosquitto_2_format_and_verifies() -> None:
    hashed = hash_password("s3cret", salt=b"0123456789ab")
    kind, iterations, salt, digest = hashed.split("$")[1:]
    assert (kind, iterations, salt) == ("7", "101", "MDEyMzQ1Njc4OWFi")
    assert len(digest) == 88  # base64 of 64 bytes
    assert verify_password("s3cret", hashed)
    assert not verify_password("s3cret!", hashed)


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
def test_we_verify_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), "cp-001", "pa55word"], check=True)
    hashed = read_password_file(path)["cp-001"]
    assert hashed.startswith("$7$101$")
    assert verify_password("pa55word", hashed)
    assert not verify_password("pa55wordX", hashed)


def test_provision_creates_devices_and_services(tmp_path: Path) -> None:
    result = provision(tmp_path, "cpm/v1", ["cp-002", "cp-001"])
    assert result.created == ["cpm-ingest", "cpm-alerts", "cpm-api", "cp-001", "cp-002"]
    hashes = read_password_file(tmp_path / "passwd")
    rows = read_csv(tmp_path / "credentials.csv")
    assert set(hashes) == set(rows) == set(result.created)
    for username, row in rows.items():
        assert verify_password(row["password"], hashes[username])
    assert rows["cp-001"]["publish_under"] == "cpm/v1/cp/cp-001/"
    assert rows["cp-001"]["alerts_topic"] == "cpm/v1/alerts/cp-001"
    assert rows["cpm-ingest"]["role"] == "service"
    assert (tmp_path / "acl").read_text() == render_acl("cpm/v1")
    env_lines = (tmp_path / "services.env").read_text().splitlines()
    assert f"MQTT_INGEST_PASSWORD={rows['cpm-ingest']['password']}" in env_lines
    assert len({row["password"] for row in rows.values()}) == len(rows)
    for private in ("passwd", "credentials.csv", "services.env"):
        assert (tmp_path / private).stat().st_mode & 0o077 == 0


def test_rerun_rotates_only_the_named_device(tmp_path: Path) -> None:
    provision(tmp_path, "cpm/v1", ["cp-001", "cp-007", "cp-009"])
    before_hashes = read_password_file(tmp_path / "passwd")
    before_rows = read_csv(tmp_path / "credentials.csv")

    result = provision(tmp_path, "cpm/v1", ["cp-001", "cp-007", "cp-009", "cp-010"],
                       rotate=["cp-007"])  # fmt: skip
    assert result.rotated == ["cp-007"]
    assert result.created == ["cp-010"]
    after_hashes = read_password_file(tmp_path / "passwd")
    after_rows = read_csv(tmp_path / "credentials.csv")
    for untouched in ("cp-001", "cp-009", "cpm-ingest", "cpm-alerts", "cpm-api"):
        assert after_hashes[untouched] == before_hashes[untouched]
        assert after_rows[untouched] == before_rows[untouched]
    assert after_hashes["cp-007"] != before_hashes["cp-007"]
    assert after_rows["cp-007"]["password"] != before_rows["cp-007"]["password"]
    assert verify_password(after_rows["cp-007"]["password"], after_hashes["cp-007"])
    assert not verify_password(before_rows["cp-007"]["password"], after_hashes["cp-007"])


def test_provision_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a valid checkpoint id"):
        provision(tmp_path, "cpm/v1", ["cp/001"])
    with pytest.raises(ValueError, match="collides with a service account"):
        provision(tmp_path, "cpm/v1", ["cpm-ingest"])
    with pytest.raises(ValueError, match="cannot rotate unknown"):
        provision(tmp_path, "cpm/v1", ["cp-001"], rotate=["cp-404"])


def test_cli_provisions_all_checkpoints_of_the_registry(
    seeded_engine: object, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from services.core.settings import get_settings

    monkeypatch.setenv("CPM_DATABASE_URL", database_url)
    monkeypatch.setenv("CPM_DEMO_MODE", "true")
    get_settings.cache_clear()
    try:
        assert main(["devices", "provision", "--checkpoints", "all", "--out", str(tmp_path),
                     "--simulator"]) == 0  # fmt: skip
        assert "106 created" in capsys.readouterr().out
        assert main(["devices", "provision", "--checkpoints", "all", "--out", str(tmp_path),
                     "--rotate", "cp-007"]) == 0  # fmt: skip
        assert "1 rotated (cp-007)" in capsys.readouterr().out
        assert main(["devices", "provision", "--checkpoints", "all", "--out", str(tmp_path),
                     "--rotate", "cp-999"]) == 2  # fmt: skip
        assert "cannot rotate unknown account(s): cp-999" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
    rows = read_csv(tmp_path / "credentials.csv")
    assert sum(row["role"] == "device" for row in rows.values()) == 102
    assert "cpm-simulator" in rows


def test_env_names_match_compose() -> None:
    compose = (Path(__file__).parents[2] / "docker-compose.yml").read_text()
    for username in ("cpm-ingest", "cpm-alerts", "cpm-api", "cpm-simulator"):
        assert "${" + env_name(username) in compose
