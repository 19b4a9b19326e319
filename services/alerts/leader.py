"""Who runs the timed rules and the delivery when several alert workers run.

PostgreSQL: the worker holding a session-level advisory lock (`pg_try_advisory_lock`)
on a connection of its own; if that worker dies, its connection closes, the lock is
released, and another worker takes over on its next check. SQLite: one alert process
per database is assumed (an embedded deployment), so it always leads.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x43504D41  # 'CPMA'
RECHECK_S = 2.0  # how often a leader confirms its connection is alive


class Leadership:
    def __init__(self, engine: Engine, key: int = LEADER_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._conn: Connection | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def elects(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def is_leader(self) -> bool:
        if not self.elects:
            return True
        with self._lock:
            try:
                return self._check()
            except SQLAlchemyError as exc:
                log.warning("leadership check failed: %s", exc)
                self._drop()
                return False

    def _check(self) -> bool:
        now = time.monotonic()
        if self._conn is not None:
            if now - self._checked >= RECHECK_S:
                self._conn.execute(text("SELECT 1"))
                self._checked = now
            return True
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        if not got:
            conn.close()
            return False
        log.info("this alert worker now leads (timed rules, delivery)")
        self._conn, self._checked = conn, now
        return True

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None

    def release(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                    self._conn.close()
                except SQLAlchemyError:
                    pass
                self._conn = None
