"""A one-line progress display on a terminal; silent when output is not a TTY."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo


class Progress:
    def __init__(
        self,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        timezone: str = "UTC",
        every_s: float = 0.25,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.zone = ZoneInfo(timezone)
        self.every_s = every_s
        self.started = time.monotonic()
        self._shown_at = 0.0
        self._width = 0

    def update(self, sim_t: float, messages: int, incidents: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._shown_at < self.every_s:
            return
        self._shown_at = now
        elapsed = max(now - self.started, 1e-9)
        clock = datetime.fromtimestamp(sim_t, self.zone).strftime("%Y-%m-%d %H:%M:%S")
        line = (
            f"simulated {clock}  messages {messages:,}  "
            f"{messages / elapsed:,.0f} msg/s  incidents {incidents:,}"
        )
        self.stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
