"""One batch of inbound messages, from bytes to committed rows, in one transaction."""

from __future__ import annotations

import logging
import time
from collections import Counter

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from services.core.enums import DeadLetterReason
from services.core.settings import Settings
from services.ingest.bulk import run
from services.ingest.matching import MatchCost
from services.ingest.parse import Accepted, Inbound, Rejected, parse_inbound
from services.ingest.plan import RowContext, build_plan
from services.ingest.store import (
    BatchOutcome,
    load_checkpoints,
    load_registry,
    write_dead_letters,
    write_plan,
)

log = logging.getLogger(__name__)
CHECKPOINT_CACHE_S = 1.0  # registry changes apply within a second
TOPIC_CACHE_SIZE = 4096  # parsed topics kept (a few per checkpoint); then started anew
SQLITE_BUSY_TIMEOUT_MS = 5000
BUSY_TIMEOUT_SET = "cpm_ingest_busy_timeout"  # key in a connection's `info`


def is_transient(error: BaseException) -> bool:
    """A database that is down or busy, as opposed to a row it refuses."""
    if isinstance(error, OperationalError | InterfaceError | DisconnectionError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class BatchProcessor:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._thresholds: dict[str, float] = {}
        self._thresholds_at = 0.0
        self._topics: dict[str, tuple[str, str]] = {}

    def process(self, items: list[Inbound]) -> BatchOutcome:
        """Store the batch, or raise. A data error is narrowed down to the messages that
        cause it, which are dead-lettered so the rest of the batch is stored."""
        try:
            return self._store(items)
        except DBAPIError as error:
            if is_transient(error):
                raise
            if len(items) == 1:
                return self._store_error(items[0], error)
            middle = len(items) // 2
            log.warning("batch of %d refused by the database; narrowing it down", len(items))
            first, second = self.process(items[:middle]), self.process(items[middle:])
            return merge(first, second)

    def _store(self, items: list[Inbound]) -> BatchOutcome:
        settings = self.settings
        with self.engine.begin() as conn:
            if conn.dialect.name == "sqlite" and not conn.info.get(BUSY_TIMEOUT_SET):
                # rather than wait silently behind another writer for the default 30 s,
                # fail soon: the batch stays unacknowledged, is retried with backoff and
                # the wait is logged. A setting of the connection: made once per
                # connection (`info` lives as long as the driver's connection)
                run(conn, f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                conn.info[BUSY_TIMEOUT_SET] = True
            now = time.monotonic()
            if now - self._thresholds_at > CHECKPOINT_CACHE_S:
                self._thresholds = load_checkpoints(conn, settings.fever_threshold_c)
                self._thresholds_at = now
            known = self._thresholds.keys()
            accepted: list[Accepted] = []
            rejected: list[Rejected] = []
            if len(self._topics) > TOPIC_CACHE_SIZE:  # anyone may publish odd topics
                self._topics.clear()
            for item in items:
                parsed = parse_inbound(
                    item, settings.topic_prefix, known, settings.max_payload_bytes, self._topics
                )
                if isinstance(parsed, Accepted):
                    accepted.append(parsed)
                else:
                    rejected.append(parsed)
            registry = load_registry(
                conn, accepted, settings.id_hash_secret.get_secret_value(), self._thresholds
            )
            plan = build_plan(accepted, RowContext(settings, registry))
            outcome = write_plan(conn, plan, settings.screening_window_s)
            outcome.dead_letters = write_dead_letters(conn, rejected)
        if rejected:
            reasons = Counter(r.reason.value for r in rejected)
            log.info("dead-lettered %d message(s): %s", len(rejected), dict(reasons))
            for r in rejected:
                log.debug(
                    "dead letter: %s",
                    r.detail,
                    extra={"checkpoint_id": r.checkpoint_id, "reason": r.reason.value},
                )
        return outcome

    def _store_error(self, item: Inbound, error: DBAPIError) -> BatchOutcome:
        detail = f"the database refused it: {type(error.orig).__name__}"
        log.error(detail, extra={"topic": item.topic})
        with self.engine.begin() as conn:
            write_dead_letters(conn, [Rejected(item, DeadLetterReason.STORE_ERROR, detail)])
        return BatchOutcome(dead_letters=1)


def merge(first: BatchOutcome, second: BatchOutcome) -> BatchOutcome:
    merged = BatchOutcome(
        stored=first.stored + second.stored,
        duplicates=first.duplicates + second.duplicates,
        dead_letters=first.dead_letters + second.dead_letters,
        screened=first.screened + second.screened,
        newest_ids=dict(first.newest_ids),
        matching=MatchCost(
            first.matching.reads + second.matching.reads,
            first.matching.rows + second.matching.rows,
            first.matching.steps + second.matching.steps,
        ),
    )
    for table, newest in second.newest_ids.items():
        merged.newest_ids[table] = max(newest, merged.newest_ids.get(table, 0))
    return merged
