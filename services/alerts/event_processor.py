"""Reading stored events past a watermark and turning them into alerts.

One transaction per source table holds: the watermark row (watermark.py: locked, then
advanced with a compare-and-set on its version), the alert upserts and their outbox
rows. Either all of it commits or none, so a crash anywhere re-reads the same rows and
every stored fever ends up as exactly one alert; two workers may run this at once.

PostgreSQL hands out ids before commit, so a row with a lower id can become visible
after a higher one was read. Ids skipped over are kept as `gaps` and looked for again
on every pass until they expire (ids burnt by rollbacks and ON CONFLICT never appear).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, literal, select, text

from services.alerts import fever_cases, store
from services.alerts.bulk import plans_for_now
from services.alerts.event_rules import (
    SENSOR_FAULT_WINDOW,
    AlertType,
    FeverIndex,
    Finding,
    PassageFact,
    ReadingFact,
    is_normal_recheck,
    passage_findings,
    person_subject,
    reading_findings,
)
from services.alerts.raising import raise_findings
from services.alerts.timed_rules import Thresholds, escalation_delay
from services.alerts.watermark import (
    WatermarkMoved,
    advance_watermark,
    next_watermark,
    read_watermark,
)
from services.core.identity import tail_only
from services.core.queries import join_pairs
from services.core.tables import (
    IMPLAUSIBLE_READING,
    checkpoint_t,
    passage_t,
    reading_t,
)

log = logging.getLogger(__name__)

# device status rows raise nothing here: device_offline is a timed condition
# (timed_rules.py), confirmed over `CPM_DEVICE_OFFLINE_CONFIRM_S`
# the sources with a watermark each; a pass reads readings first (run_once)
SOURCES = ("reading", "passage")
# implausible readings counted for a sensor fault, at most: the count reads no more
# index entries than this, however many a broken (or hostile) device sends
SENSOR_FAULT_COUNT_CAP = 100
# reading batches a pass takes before its batch of passages, at most: readings come
# first, but a flood of readings alone must not stop passages from being read at all
READING_BATCHES_FIRST = 10


@dataclass
class Processor:
    engine: Engine
    thresholds: Thresholds
    clock: Callable[[], datetime]
    recheck_window: timedelta
    batch_size: int = 500
    gap_expiry_s: float = 30.0

    def run_once(self) -> int:
        """Readings until they are caught up (READING_BATCHES_FIRST batches at most),
        then one batch of passages; returns the number of rows read. A fever then waits
        behind at most one batch of passages, however far a flood of passages (each a
        new alert) has put them behind."""
        total = 0
        for _ in range(READING_BATCHES_FIRST):
            read = self._process_source("reading")
            total += read
            if read < self.batch_size:
                break
        return total + self._process_source("passage")

    def _process_source(self, source: str) -> int:
        try:
            return self.process(source)
        except WatermarkMoved:
            log.info("watermark %s moved under us; retrying next pass", source)
            return 0

    def run_until_idle(
        self, max_passes: int = 100, after_pass: Callable[[int], None] | None = None
    ) -> int:
        """Pass after pass until nothing is new; `after_pass(rows read)` after each, so
        what a pass raised is delivered while later passes still run."""
        total = 0
        for _ in range(max_passes):
            read = self.run_once()
            total += read
            if after_pass is not None:
                after_pass(read)
            if read == 0:
                break
        return total

    def process(self, source: str) -> int:
        table = {"passage": passage_t, "reading": reading_t}[source]
        handler = {"passage": self._passages, "reading": self._readings}[source]
        now = self.clock()
        with self.engine.begin() as conn:
            plans_for_now(conn)
            wm = read_watermark(conn, source)
            if wm is None:
                raise WatermarkMoved(f"no watermark row {source}")
            gap_ids = [int(g[0]) for g in wm["gaps"]]
            query = select(table, checkpoint_t.c.site_id).join(
                checkpoint_t, checkpoint_t.c.id == table.c.checkpoint_id
            )
            late = (
                conn.execute(query.where(table.c.id.in_(gap_ids)).order_by(table.c.id)).all()
                if gap_ids
                else []
            )
            rows = conn.execute(
                query.where(table.c.id > wm["last_id"]).order_by(table.c.id).limit(self.batch_size)
            ).all()
            if not rows and not late:
                return 0
            handler(conn, [*late, *rows], now)
            new_last, gaps = next_watermark(
                wm["last_id"],
                (r.id for r in rows),
                wm["gaps"],
                {r.id for r in late},
                now.timestamp(),
                self.gap_expiry_s,
            )
            advance_watermark(conn, wm, now, new_last, gaps=gaps)
        return len(rows) + len(late)

    # --- handlers ------------------------------------------------------------------
    def _raise(self, conn: Connection, findings: list[Finding], now: datetime) -> None:
        """A batch's findings in one set-based call (raising.py); a case per new fever."""
        raised = raise_findings(
            conn, findings, now, lambda severity: escalation_delay(severity, self.thresholds)
        )
        opened_fevers = [
            (r.alert_id, finding)
            for finding, r in zip(findings, raised, strict=True)
            if r is not None and r.created and finding.type == AlertType.FEVER
        ]
        fever_cases.open_cases(conn, opened_fevers, now, self.recheck_window)

    def _passages(self, conn: Connection, rows: list[Any], now: datetime) -> None:
        linked: list[tuple[Any, str]] = []
        findings: list[Finding] = []
        for row in rows:
            fact = passage_fact(row)
            findings += passage_findings(fact)
            if fact.id_hash and row.reading_id is not None:
                linked.append((row.reading_id, person_subject(fact.id_hash)[2:]))
        self._raise(conn, findings, now)
        if not linked:
            return
        # the next passage of a person with an open fever: its reading may be the re-check
        persons = dict(linked)
        readings = conn.execute(
            select(reading_t, checkpoint_t.c.site_id)
            .join(checkpoint_t, checkpoint_t.c.id == reading_t.c.checkpoint_id)
            .where(reading_t.c.id.in_(list(persons)))
        ).all()
        self._recheck(conn, [reading_fact(r, persons.get(r.id)) for r in readings], now)

    def _readings(self, conn: Connection, rows: list[Any], now: datetime) -> None:
        persons = self._reading_persons(conn, rows)
        facts = [reading_fact(row, persons.get(row.id)) for row in rows]
        recent = recent_implausible_counts(conn, [f for f in facts if f.implausible])
        findings: list[Finding] = []
        for fact in facts:
            findings += reading_findings(fact, recent.get(fact.id, 0))
        self._raise(conn, findings, now)
        self._recheck(conn, facts, now)

    def _reading_persons(self, conn: Connection, rows: list[Any]) -> dict[int, str]:
        """Person keys of readings linked to a passage, by passage_id or entry_msg_id."""
        persons: dict[int, str] = {}
        by_passage: dict[int, list[int]] = {}
        for r in rows:
            if r.passage_id is not None:
                by_passage.setdefault(r.passage_id, []).append(r.id)
        if by_passage:
            for pid, id_hash in conn.execute(
                select(passage_t.c.id, passage_t.c.id_hash).where(
                    passage_t.c.id.in_(list(by_passage)), passage_t.c.id_hash.is_not(None)
                )
            ):
                for reading_id in by_passage[pid]:
                    persons[reading_id] = person_subject(id_hash)[2:]
        by_entry: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            if row.id not in persons and row.entry_msg_id:
                by_entry.setdefault((row.checkpoint_id, row.entry_msg_id), []).append(row.id)
        if by_entry:  # one query for the batch, not one per reading
            named = join_pairs(conn.dialect.name, passage_t, passage_t.c.msg_id, set(by_entry))
            for cp, msg_id, id_hash in conn.execute(
                select(passage_t.c.checkpoint_id, passage_t.c.msg_id, passage_t.c.id_hash)
                .select_from(named)
                .where(passage_t.c.id_hash.is_not(None))
            ):
                for reading_id in by_entry[(cp, msg_id)]:
                    persons[reading_id] = person_subject(id_hash)[2:]
        return persons

    def _recheck(self, conn: Connection, facts: list[ReadingFact], now: datetime) -> None:
        # only a reading that names its person, entry or passage can be a re-check
        normal = [
            f
            for f in facts
            if not f.fever
            and not f.implausible
            and (f.person or f.entry_msg_id or f.passage_id is not None)
        ]
        if not normal:
            return
        fevers = FeverIndex(fever_cases.open_fevers(conn))
        for fact in normal:
            for fever in fevers.candidates(fact):
                if is_normal_recheck(fever, fact, self.recheck_window):
                    # a fever resolves only with a disposition and who decided it
                    decided_by = fever_cases.record_recheck(conn, fever.alert_id, fact, now)
                    if decided_by is None:
                        continue
                    note = f"re-check {fact.temp_c:.1f} °C (reading {fact.id}) by {decided_by}"
                    store.resolve_keys_by_id(conn, fever.alert_id, now, "recheck_normal", note)


def recent_implausible_counts(conn: Connection, facts: Sequence[ReadingFact]) -> dict[int, int]:
    """For each implausible reading, the implausible readings at its checkpoint within
    SENSOR_FAULT_WINDOW up to it, counted up to SENSOR_FAULT_COUNT_CAP: one statement
    for the batch (not one per reading), of constant text (the readings are one array
    or JSON parameter), each count a range of the partial index `ix_reading_implausible`
    with a LIMIT, as recent_implausible_query does for one."""
    if not facts:
        return {}
    los = [f.ts - SENSOR_FAULT_WINDOW for f in facts]
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(
            RECENT_IMPLAUSIBLE_PG,
            {
                "ids": [f.id for f in facts],
                "cps": [f.checkpoint_id for f in facts],
                "los": los,
                "tss": [f.ts for f in facts],
                "cap": SENSOR_FAULT_COUNT_CAP,
            },
        )
    else:
        listed = [
            [f.id, f.checkpoint_id, sqlite_stamp(lo), sqlite_stamp(f.ts)]
            for f, lo in zip(facts, los, strict=True)
        ]
        rows = conn.exec_driver_sql(
            RECENT_IMPLAUSIBLE_SQLITE, (SENSOR_FAULT_COUNT_CAP, json.dumps(listed))
        )
    return {int(reading_id): int(count) for reading_id, count in rows}


def sqlite_stamp(value: datetime) -> str:
    """A UTC timestamp as SQLAlchemy stores it in SQLite (naive text)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


# the partial index's condition, written as in its definition (SQLite matches it as text)
RECENT_IMPLAUSIBLE_PG = f"""
SELECT f.id, (
    SELECT count(*) FROM (
        SELECT 1 FROM reading AS r
        WHERE r.checkpoint_id = f.cp AND r.{IMPLAUSIBLE_READING}
          AND r.ts > f.lo AND r.ts <= f.ts AND r.id <= f.id
        LIMIT %(cap)s
    ) AS capped
)
FROM unnest(%(ids)s::bigint[], %(cps)s::text[], %(los)s::timestamptz[], %(tss)s::timestamptz[])
    AS f(id, cp, lo, ts)
"""
RECENT_IMPLAUSIBLE_SQLITE = f"""
WITH f(id, cp, lo, ts) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
           json_extract(value, '$[2]'), json_extract(value, '$[3]')
    FROM json_each(?2)
)
SELECT f.id, (
    SELECT count(*) FROM (
        SELECT 1 FROM reading
        WHERE checkpoint_id = f.cp AND {IMPLAUSIBLE_READING}
          AND ts > f.lo AND ts <= f.ts AND id <= f.id
        LIMIT ?1
    )
)
FROM f
"""


def recent_implausible_query(fact: ReadingFact) -> Any:
    """The count of recent_implausible_counts for one reading."""
    c = reading_t.c
    recent = (
        select(literal(1))
        .where(
            c.checkpoint_id == fact.checkpoint_id,
            text(IMPLAUSIBLE_READING),
            c.ts > fact.ts - SENSOR_FAULT_WINDOW,
            c.ts <= fact.ts,
            c.id <= fact.id,
        )
        .limit(SENSOR_FAULT_COUNT_CAP)
        .subquery()
    )
    return select(func.count()).select_from(recent)


def passage_fact(row: Any) -> PassageFact:
    return PassageFact(
        id=row.id,
        checkpoint_id=row.checkpoint_id,
        site_id=row.site_id,
        ts=row.ts,
        received_at=row.received_at,
        direction=row.direction,
        kind=row.kind,
        registration=row.registration,
        quarantined=row.quarantined,
        screened=row.screened,
        clock_adjusted=row.clock_adjusted,
        id_hash=row.id_hash,
        id_masked=tail_only(row.id_masked),  # alerts reach handhelds and webhooks
        plate=row.plate,
        msg_id=row.msg_id,
    )


def reading_fact(row: Any, person: str | None) -> ReadingFact:
    return ReadingFact(
        id=row.id,
        checkpoint_id=row.checkpoint_id,
        site_id=row.site_id,
        ts=row.ts,
        temp_c=row.temp_c,
        fever=row.fever,
        implausible=row.implausible,
        clock_adjusted=row.clock_adjusted,
        msg_id=row.msg_id,
        entry_msg_id=row.entry_msg_id,
        passage_id=row.passage_id,
        person=person,
    )
