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

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, literal, select, text

from services.alerts import fever_cases, store
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
# readings first: a fever (critical) then waits behind at most one batch of readings,
# not behind a batch of passages whose strangers each open an alert of their own
SOURCES = ("reading", "passage")
# implausible readings counted for a sensor fault, at most: the count reads no more
# index entries than this, however many a broken (or hostile) device sends
SENSOR_FAULT_COUNT_CAP = 100


@dataclass
class Processor:
    engine: Engine
    thresholds: Thresholds
    clock: Callable[[], datetime]
    recheck_window: timedelta
    batch_size: int = 500
    gap_expiry_s: float = 30.0

    def run_once(self) -> int:
        """Process every source once; returns the number of rows read."""
        total = 0
        for source in SOURCES:
            try:
                total += self.process(source)
            except WatermarkMoved:
                log.info("watermark %s moved under us; retrying next pass", source)
        return total

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
        findings: list[Finding] = []
        for fact in facts:
            recent = self._recent_implausible(conn, fact) if fact.implausible else 0
            findings += reading_findings(fact, recent)
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

    def _recent_implausible(self, conn: Connection, fact: ReadingFact) -> int:
        """The implausible readings at the reading's checkpoint within
        SENSOR_FAULT_WINDOW up to it, counted up to SENSOR_FAULT_COUNT_CAP: a range of
        the partial index `ix_reading_implausible` (its condition repeated as text, so
        SQLite matches it) with a LIMIT."""
        return int(conn.execute(recent_implausible_query(fact)).scalar_one())

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


def recent_implausible_query(fact: ReadingFact) -> Any:
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
