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

from sqlalchemy import Connection, Engine, func, select

from services.alerts import fever_cases, store
from services.alerts.event_rules import (
    SENSOR_FAULT_WINDOW,
    AlertType,
    OpenFever,
    PassageFact,
    ReadingFact,
    is_normal_recheck,
    passage_findings,
    person_subject,
    reading_findings,
)
from services.alerts.timed_rules import (
    CheckpointFact,
    Thresholds,
    device_offline,
    escalation_delay,
)
from services.alerts.watermark import (
    WatermarkMoved,
    advance_watermark,
    next_watermark,
    read_watermark,
)
from services.core.identity import tail_only
from services.core.queries import join_pairs
from services.core.tables import checkpoint_t, passage_t, reading_t, status_t

log = logging.getLogger(__name__)

SOURCES = ("passage", "reading", "device_status_event")


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

    def run_until_idle(self, max_passes: int = 100) -> int:
        total = 0
        for _ in range(max_passes):
            read = self.run_once()
            total += read
            if read == 0:
                break
        return total

    def process(self, source: str) -> int:
        table = {"passage": passage_t, "reading": reading_t, "device_status_event": status_t}[
            source
        ]
        handler = {
            "passage": self._passages,
            "reading": self._readings,
            "device_status_event": self._statuses,
        }[source]
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
    def _raise(self, conn: Connection, finding: Any, now: datetime, repeat: bool = True) -> Any:
        delay = escalation_delay(finding.severity, self.thresholds)
        raised = store.raise_alert(conn, finding, now, delay, repeat=repeat)
        if raised is not None and raised.created and finding.type == AlertType.FEVER:
            fever_cases.open_case(conn, raised.alert_id, finding, now, self.recheck_window)
        return raised

    def _passages(self, conn: Connection, rows: list[Any], now: datetime) -> None:
        linked: list[tuple[Any, str]] = []
        for row in rows:
            fact = passage_fact(row)
            for finding in passage_findings(fact):
                self._raise(conn, finding, now)
            if fact.id_hash and row.reading_id is not None:
                linked.append((row.reading_id, person_subject(fact.id_hash)[2:]))
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
        for fact in facts:
            recent = self._recent_implausible(conn, fact) if fact.implausible else 0
            for finding in reading_findings(fact, recent):
                self._raise(conn, finding, now)
        self._recheck(conn, facts, now)

    def _statuses(self, conn: Connection, rows: list[Any], now: datetime) -> None:
        for row in rows:
            if row.state != "offline":
                continue  # coming back online is seen (and resolved) by the timer
            fact = CheckpointFact(row.checkpoint_id, row.site_id, 0, "offline", None, None, 0, None)
            finding = device_offline(fact, now, self.thresholds)
            if finding is not None:
                self._raise(conn, finding, now, repeat=False)

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
        return int(
            conn.execute(
                select(func.count()).where(
                    reading_t.c.checkpoint_id == fact.checkpoint_id,
                    reading_t.c.implausible.is_(True),
                    reading_t.c.ts > fact.ts - SENSOR_FAULT_WINDOW,
                    reading_t.c.ts <= fact.ts,
                    reading_t.c.id <= fact.id,
                )
            ).scalar_one()
        )

    def _recheck(self, conn: Connection, facts: list[ReadingFact], now: datetime) -> None:
        normal = [f for f in facts if not f.fever and not f.implausible]
        if not normal:
            return
        fevers = open_fevers(conn)
        for fact in normal:
            for fever in fevers:
                if is_normal_recheck(fever, fact, self.recheck_window):
                    # a fever resolves only with a disposition and who decided it
                    decided_by = fever_cases.record_recheck(conn, fever.alert_id, fact, now)
                    if decided_by is None:
                        continue
                    note = f"re-check {fact.temp_c:.1f} °C (reading {fact.id}) by {decided_by}"
                    store.resolve_keys_by_id(conn, fever.alert_id, now, "recheck_normal", note)


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


def open_fevers(conn: Connection) -> list[OpenFever]:
    """Open fever alerts, with the person filled in from the fever reading's passage
    when ingest linked it after the alert was raised (one query for all of them)."""
    rows = store.open_alerts_of(conn, [AlertType.FEVER.value])
    unknown = [
        r.details["reading_id"]
        for r in rows
        if "person" not in (r.details or {}) and "reading_id" in (r.details or {})
    ]
    linked: dict[int, tuple[int, str | None]] = {}
    if unknown:
        for reading_id, passage_id, id_hash in conn.execute(
            select(reading_t.c.id, passage_t.c.id, passage_t.c.id_hash)
            .join(passage_t, reading_t.c.passage_id == passage_t.c.id)
            .where(reading_t.c.id.in_(unknown))
        ):
            linked[reading_id] = (passage_id, id_hash)
    fevers = []
    for alert in rows:
        d = alert.details or {}
        reading_id = d.get("reading_id")
        person, passage_id = d.get("person"), d.get("passage_id")
        if person is None and reading_id in linked:
            passage_id, id_hash = linked[reading_id]
            person = person_subject(id_hash)[2:] if id_hash else None
        fever_ts = datetime.fromisoformat(d["fever_ts"]) if "fever_ts" in d else alert.opened_at
        fevers.append(
            OpenFever(
                alert_id=alert.id,
                checkpoint_id=alert.checkpoint_id,
                reading_id=reading_id or 0,
                fever_ts=fever_ts,
                entry_msg_id=d.get("entry_msg_id"),
                passage_id=passage_id,
                person=person,
            )
        )
    return fevers
