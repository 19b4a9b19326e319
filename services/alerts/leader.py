"""Who runs the timed rules and the delivery when several alert workers run.

PostgreSQL: the worker holding a session-level advisory lock (`pg_try_advisory_lock`)
on a connection of its own; if that worker dies, its connection closes, the lock is
released, and another worker takes over on its next check. SQLite: an exclusive
`flock` on a file next to the database (`<database>.alerts-leader`), held for the life
of the process; the kernel releases it when the process dies, however it dies. An
in-memory SQLite database is one process's own, so that process leads.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from pathlib import Path

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
        self._file: int | None = None  # the descriptor holding the SQLite lock
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def elects(self) -> bool:
        return self.engine.dialect.name == "postgresql" or self.lock_path is not None

    @property
    def lock_path(self) -> Path | None:
        """SQLite: the file whose lock elects the leader; None for an in-memory database."""
        if self.engine.dialect.name != "sqlite":
            return None
        database = self.engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        path = Path(database).resolve()
        return path.with_name(path.name + ".alerts-leader")

    def is_leader(self) -> bool:
        if not self.elects:
            return True
        with self._lock:
            if self.engine.dialect.name == "sqlite":
                return self._check_file()
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

    def _check_file(self) -> bool:
        if self._file is not None:
            return True
        path = self.lock_path
        assert path is not None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("leadership lock %s cannot be opened: %s", path, exc)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process leads
            os.close(fd)
            return False
        log.info("this alert worker now leads (timed rules, delivery)")
        self._file = fd
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
            if self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
                os.close(self._file)
                self._file = None
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                    self._conn.close()
                except SQLAlchemyError:
                    pass
                self._conn = None
