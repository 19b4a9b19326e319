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
        "--poll", type=float, default=1.0, help="read new rows at least every N seconds"
    )
    alerts.add_argument(
        "--timers", type=float, default=5.0, help="evaluate timed rules every N seconds"
    )
    alerts.set_defaults(func=cmd_alerts)


def cmd_alerts(args: argparse.Namespace) -> int:
    from services.alerts.service import AlertService, AlertTuning

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_json)
    if args.poll <= 0 or args.timers <= 0:
        print("cpmon alerts: --poll and --timers must be positive")
        return 2
    service = AlertService(
        settings, tuning=AlertTuning(poll_interval_s=args.poll, timers_interval_s=args.timers)
    )
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
