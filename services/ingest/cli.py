"""`cpmon ingest`: run the ingest service until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from services.core.logs import setup_logging
from services.core.settings import get_settings
from services.core.utils import freeze_startup_objects

log = logging.getLogger("services.ingest")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ingest", help="store what devices publish (MQTT → database), acknowledged after commit"
    )
    parser.add_argument("--client-id", help="MQTT client id (overrides CPM_INGEST_CLIENT_ID)")
    parser.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    from services.ingest.service import IngestService

    settings = get_settings()
    if args.client_id:
        settings = settings.model_copy(update={"ingest_client_id": args.client_id})
    setup_logging(settings.log_level, settings.log_json)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    service = IngestService(settings)
    service.start(timeout=None)  # a broker that is not up yet is retried in the background
    freeze_startup_objects()
    log.info("ingest running as %s on %r", settings.ingest_client_id, settings.mqtt)
    stop.wait()
    log.info("stopping: committing and acknowledging what was received")
    service.stop()
    log.info("stopped: %s", service.stats)
    return 0
