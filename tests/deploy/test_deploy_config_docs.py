"""docs/configuration.md is exactly what `cpmon config docs` generates."""

from __future__ import annotations

from pathlib import Path

from services.cli import main
from services.core.settings import Settings
from services.deploy.config_docs import default_path, render_configuration


def test_committed_configuration_page_is_up_to_date() -> None:
    assert default_path().read_text(encoding="utf-8") == render_configuration(), (
        "docs/configuration.md is stale: run `cpmon config docs`"
    )


def test_every_setting_is_listed_with_its_env_variable_and_default() -> None:
    page = render_configuration()
    for name, field in Settings.model_fields.items():
        row = next(line for line in page.splitlines() if f"`CPM_{name.upper()}`" in line)
        if isinstance(field.default, str | int) and not isinstance(field.default, bool):
            assert f"`{field.default}`" in row


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    assert main(["config", "docs", "--out", str(stale), "--check"]) == 1
    assert main(["config", "docs", "--out", str(stale)]) == 0
    assert main(["config", "docs", "--out", str(stale), "--check"]) == 0
    assert stale.read_text() == render_configuration()


def test_secrets_are_secret_and_log_level_and_retry_policy_are_settings() -> None:
    from services.alerts.delivery import RetryPolicy
    from services.core.settings import DEMO_ID_HASH_SECRET

    secret = "a-secret-of-this-site-0123456789"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        id_hash_secret=secret,
        log_level="debug",
        webhook_retry_base_s=2.0,
        webhook_retry_cap_s=60.0,
    )
    assert secret not in repr(settings) and secret not in str(settings.model_dump())
    assert settings.id_hash_secret.get_secret_value() == secret
    assert settings.log_level == "DEBUG"
    assert RetryPolicy.from_settings(settings) == RetryPolicy(base_s=2.0, cap_s=60.0)
    assert DEMO_ID_HASH_SECRET not in render_configuration()
