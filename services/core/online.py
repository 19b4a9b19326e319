"""One notion of "online", shared by the board, the device-uptime figure, the Prometheus
gauge and the device_offline alert: pure functions of a checkpoint's live state
(`checkpoint_state`) and the clock.

A device is online when its last reported status is `online` and it has been heard
(any message) within the silence threshold (`CPM_DEVICE_SILENCE_S`). Silence past the
threshold is offline everywhere; the next message makes it online again. A device that
reported `offline` (or whose will the broker published) is offline since that report.
"""

from __future__ import annotations

from datetime import datetime, timedelta

ONLINE = "online"
OFFLINE = "offline"
UNKNOWN = "unknown"
# the state recorded in the status history while a device is silent (device uptime
# counts it as offline, like any state other than `online`)
SILENT = "silent"


def is_silent(last_seen_at: datetime | None, now: datetime, silence: timedelta) -> bool:
    return last_seen_at is not None and now - last_seen_at > silence


def is_online(
    device_state: str | None, last_seen_at: datetime | None, now: datetime, silence: timedelta
) -> bool:
    return device_state == ONLINE and not is_silent(last_seen_at, now, silence)


def offline_since(
    device_state: str | None,
    state_since: datetime | None,
    last_seen_at: datetime | None,
    now: datetime,
    silence: timedelta,
) -> datetime | None:
    """Since when the device is offline (None: it is not): from its `offline` report, or
    from the moment its silence passed the threshold."""
    if device_state == OFFLINE:
        return state_since or last_seen_at or now
    if last_seen_at is not None and is_silent(last_seen_at, now, silence):
        return last_seen_at + silence
    return None


def shown_state(
    device_state: str | None, last_seen_at: datetime | None, now: datetime, silence: timedelta
) -> str:
    """online | offline | unknown, as the board and the gauge show it."""
    if is_online(device_state, last_seen_at, now, silence):
        return ONLINE
    if offline_since(device_state, None, last_seen_at, now, silence) is not None:
        return OFFLINE
    return UNKNOWN
