"""Configuration errors as an operator sees them: weak HMAC secrets refused, and no
secret ever printed back."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.core.settings import Settings

STRONG = "b1f0c9e2a7d84c3f95e6b0a1d2c3e4f5"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "weak", ["aaaaaaaaaaaaaaaa", "abababababababababab", "1111111111111111222", "short-secret"]
)
def test_a_predictable_hmac_secret_is_refused_without_being_echoed(weak: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(id_hash_secret=weak)
    message = str(caught.value)
    assert "CPM_ID_HASH_SECRET" in message and weak not in message


def test_a_strong_secret_is_accepted_and_kept_secret() -> None:
    s = settings(id_hash_secret=STRONG)
    assert STRONG not in repr(s) and STRONG not in str(s.model_dump())


def test_errors_never_print_a_broker_password_or_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "hunter2-broker-password"
    with pytest.raises(ValidationError) as caught:
        settings(id_hash_secret=STRONG, mqtt_url=f"http://ingest:{password}@broker:1883")
    message = str(caught.value)
    assert "CPM_MQTT_URL" in message
    assert password not in message and STRONG not in message
    # from the environment, the way services read it
    monkeypatch.setenv("CPM_ID_HASH_SECRET", STRONG)
    monkeypatch.setenv("CPM_MQTT_URL", f"tcp://ingest:{password}@broker")
    monkeypatch.setenv("CPM_INGEST_BATCH_SIZE", "0")
    with pytest.raises(ValidationError) as caught:
        settings()
    message = str(caught.value)
    assert password not in message and STRONG not in message
    assert "ingest_batch_size" in message
