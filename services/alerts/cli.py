"""`cpmon alerts`: run the alert service until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from services.core.logs import setup_logging
from services.core.settings import get_settings
from services.core.utils import freeze_startup_objects


def register(subparsers: Any) -> None:
    alerts = subparsers.add_parser(
        "alerts", help="run the alert service (rules, escalation, MQTT and webhook delivery)"
    )
    alerts.add_argument(
        "--poll",
        type=float,
        help="read new rows at least every N seconds (default CPM_ALERTS_POLL_INTERVAL_S)",
    )
    alerts.add_argument(
        "--timers",
        type=float,
        help="evaluate timed rules every N seconds (default CPM_ALERTS_TIMERS_INTERVAL_S)",
    )
    alerts.set_defaults(func=cmd_alerts)


def cmd_alerts(args: argparse.Namespace) -> int:
    from services.alerts.service import AlertService

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    overrides = {
        name: value
        for name, value in (
            ("alerts_poll_interval_s", args.poll),
            ("alerts_timers_interval_s", args.timers),
        )
        if value is not None
    }
    if any(value <= 0 for value in overrides.values()):
        print("cpmon alerts: --poll and --timers must be positive")
        return 2
    service = AlertService(settings.model_copy(update=overrides))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    service.start()
    freeze_startup_objects()
    try:
        stop.wait()
    finally:
        service.stop()
    return 0
