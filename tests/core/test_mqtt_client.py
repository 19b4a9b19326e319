"""The one place that builds MQTT clients: paho's own log lines go to `paho.mqtt`,
with its shutdown noise demoted and its real errors kept."""

from __future__ import annotations

import logging

import pytest

from services.core.mqtt import PAHO_LOG, paho_client


def test_the_not_connected_line_of_a_stopping_client_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # what paho's network thread does once more after disconnect(): a loop with no socket
    client = paho_client("t-noise", "5")
    with caplog.at_level(logging.DEBUG, logger="paho.mqtt"):
        client.loop(timeout=0.01)
    (line,) = [r for r in caplog.records if "Client is not connected" in r.getMessage()]
    assert line.levelno == logging.DEBUG
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="paho.mqtt"):
        client.loop(timeout=0.01)
    assert not caplog.records  # demoted below what the services log


def test_other_paho_errors_stay_errors(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="paho.mqtt"):
        PAHO_LOG.error("failed to receive on socket: %s", "reset by peer")
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
