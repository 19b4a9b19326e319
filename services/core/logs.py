"""Logging set-up: plain text for people, one JSON object per line for machines.

Pass `extra={"checkpoint_id": ..., "msg_id": ...}` on every line about a message; the
formatters print them. Never log a payload without `identity.redact`.

Both formatters mask every ID-shaped number in the finished line as a last guard
(`identity.redact_text`): a topic in a library's debug line, a path or query string in
an access log line, a database error quoting a value. Hidden in a device's topic or a
client's URL, an ID number would otherwise reach the log as sent.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from services.core.identity import redact_text

CONTEXT_FIELDS = ("checkpoint_id", "msg_id", "topic", "reason", "alert_id", "service")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return redact_text(json.dumps(line, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = [
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        ]
        return redact_text(f"{text} [{' '.join(context)}]" if context else text)


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
