"""Fixtures the alert tests share: a settable clock and an alert service that reads it
(a module may override `clock`, e.g. to start at a fixed instant)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from services.alerts.service import AlertService
from tests.support.alerts import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(seeded_engine: Engine, make_settings: Callable[..., Any], clock: Clock) -> AlertService:
    return AlertService(make_settings(), seeded_engine, clock=clock)
