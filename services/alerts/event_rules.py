"""What is wrong, decided by pure functions over plain data (no broker, no database).

Row rules look at one stored event (a passage or a reading) and return the findings it
raises. Condition rules (timed_rules.py) look at the live state of the checkpoints and
return the findings that hold *now*; an open condition alert missing from them has ended.

A finding names its alert by a dedup key (type | checkpoint | subject): while an alert
with that key is open, the same finding again only raises its `occurrences`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.core.models.alerts import AlertType, Severity

SEVERITY: dict[AlertType, Severity] = {
    AlertType.FEVER: Severity.CRITICAL,
    AlertType.QUARANTINE_BREACH: Severity.CRITICAL,
    AlertType.UNREGISTERED_ENTRY: Severity.MAJOR,
    AlertType.STAFFING_GAP: Severity.MAJOR,
    AlertType.DEVICE_OFFLINE: Severity.MAJOR,
    AlertType.UNSCREENED_PASSAGE: Severity.WARNING,
    AlertType.SENSOR_FAULT: Severity.WARNING,
    AlertType.CLOCK_SKEW: Severity.WARNING,
    AlertType.NO_SHOW: Severity.MAJOR,
    AlertType.LEFT_POST: Severity.MAJOR,
    AlertType.SCREENING_SUSPECT: Severity.MAJOR,
    AlertType.RECTIFICATION_OVERDUE: Severity.MAJOR,
    AlertType.ENTERPRISE_UNCHECKED: Severity.MAJOR,
}

# Conditions: they hold while a state lasts and resolve themselves when it ends.
CONDITION_TYPES = frozenset(
    {
        AlertType.STAFFING_GAP,
        AlertType.DEVICE_OFFLINE,
        AlertType.CLOCK_SKEW,
        AlertType.NO_SHOW,
        AlertType.LEFT_POST,
    }
)

SENSOR_FAULT_COUNT = 3  # implausible readings at one checkpoint ...
SENSOR_FAULT_WINDOW = timedelta(minutes=10)  # ... within this window
UNSCREENED_MARGIN = timedelta(seconds=5)  # ingest's linking may lag a little
PERSON_KEY_LEN = 16  # enough of the HMAC to tell people apart; never the raw ID


def dedup_key(alert_type: str, checkpoint_id: str, subject: str) -> str:
    return f"{alert_type}|{checkpoint_id}|{subject}"


def person_subject(id_hash: str) -> str:
    return "h:" + id_hash[:PERSON_KEY_LEN]


@dataclass(frozen=True, slots=True)
class Finding:
    type: AlertType
    checkpoint_id: str
    site_id: str
    subject: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.type]

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.type, self.checkpoint_id, self.subject)


@dataclass(frozen=True, slots=True)
class PassageFact:
    id: int
    checkpoint_id: str
    site_id: str
    ts: datetime
    received_at: datetime
    direction: str
    kind: str
    registration: str
    quarantined: bool
    screened: bool
    clock_adjusted: bool = False
    id_hash: str | None = None
    id_masked: str | None = None
    plate: str | None = None
    msg_id: str = ""


@dataclass(frozen=True, slots=True)
class ReadingFact:
    id: int
    checkpoint_id: str
    site_id: str
    ts: datetime
    temp_c: float
    fever: bool
    implausible: bool
    clock_adjusted: bool = False
    msg_id: str = ""
    entry_msg_id: str | None = None
    passage_id: int | None = None
    person: str | None = None  # person key (hash prefix) when the reading is linked


# --- row rules -------------------------------------------------------------------------
def passage_subject(passage: PassageFact) -> str:
    if passage.id_hash:
        return person_subject(passage.id_hash)
    if passage.plate:
        return "plate:" + passage.plate
    return f"passage:{passage.id}"


def passage_findings(passage: PassageFact) -> list[Finding]:
    """Quarantine breach, unregistered entry and an untrusted device clock."""
    findings: list[Finding] = []
    base = {"passage_id": passage.id, "direction": passage.direction, "ts": _iso(passage.ts)}
    if passage.id_masked:
        base["id_masked"] = passage.id_masked
    if passage.quarantined and passage.kind == "person":
        findings.append(
            Finding(
                AlertType.QUARANTINE_BREACH,
                passage.checkpoint_id,
                passage.site_id,
                passage_subject(passage),
                f"Person under home quarantine passed {passage.checkpoint_id} "
                f"({passage.direction})",
                base,
            )
        )
    if passage.registration != "registered":
        findings.append(
            Finding(
                AlertType.UNREGISTERED_ENTRY,
                passage.checkpoint_id,
                passage.site_id,
                passage_subject(passage),
                f"{passage.kind.capitalize()} passage at {passage.checkpoint_id} not "
                f"registered: {passage.registration}",
                {**base, "registration": passage.registration, "kind": passage.kind},
            )
        )
    if passage.clock_adjusted:
        findings.append(clock_adjusted_finding(passage.checkpoint_id, passage.site_id))
    return findings


def reading_findings(reading: ReadingFact, recent_implausible: int) -> list[Finding]:
    """Fever, and a sensor fault once `recent_implausible` (the implausible readings at
    this checkpoint within SENSOR_FAULT_WINDOW up to this one, itself included) reaches
    SENSOR_FAULT_COUNT. An implausible reading is never a fever."""
    findings: list[Finding] = []
    if reading.implausible:
        if recent_implausible >= SENSOR_FAULT_COUNT:
            findings.append(
                Finding(
                    AlertType.SENSOR_FAULT,
                    reading.checkpoint_id,
                    reading.site_id,
                    "",
                    f"{recent_implausible} implausible readings at {reading.checkpoint_id} "
                    f"within {int(SENSOR_FAULT_WINDOW.total_seconds() // 60)} min "
                    f"(latest {reading.temp_c:.1f} °C)",
                    {"reading_id": reading.id, "temp_c": reading.temp_c},
                )
            )
    elif reading.fever:
        findings.append(fever_finding(reading))
    if reading.clock_adjusted:
        findings.append(clock_adjusted_finding(reading.checkpoint_id, reading.site_id))
    return findings


def fever_subject(reading: ReadingFact) -> str:
    if reading.person:
        return "h:" + reading.person
    if reading.entry_msg_id:
        return "entry:" + reading.entry_msg_id
    return f"reading:{reading.id}"


def fever_finding(reading: ReadingFact) -> Finding:
    details: dict[str, Any] = {
        "reading_id": reading.id,
        "temp_c": reading.temp_c,
        "fever_ts": _iso(reading.ts),
    }
    if reading.entry_msg_id:
        details["entry_msg_id"] = reading.entry_msg_id
    if reading.passage_id is not None:
        details["passage_id"] = reading.passage_id
    if reading.person:
        details["person"] = reading.person
    return Finding(
        AlertType.FEVER,
        reading.checkpoint_id,
        reading.site_id,
        fever_subject(reading),
        f"Fever {reading.temp_c:.1f} °C at {reading.checkpoint_id}",
        details,
    )


def clock_adjusted_finding(checkpoint_id: str, site_id: str) -> Finding:
    return Finding(
        AlertType.CLOCK_SKEW,
        checkpoint_id,
        site_id,
        "",
        f"Device clock at {checkpoint_id} is off: events stored at their receipt time",
        {"clock_adjusted": True},
    )


# --- fever re-check --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OpenFever:
    """An open fever alert, as the re-check needs it."""

    alert_id: int
    checkpoint_id: str
    reading_id: int
    fever_ts: datetime
    entry_msg_id: str | None
    passage_id: int | None
    person: str | None


def is_normal_recheck(fever: OpenFever, reading: ReadingFact, window: timedelta) -> bool:
    """A later, plausible reading below the threshold of the same person (same entry,
    same passage, or the same person hash) within the re-check window."""
    if reading.fever or reading.implausible or reading.id == fever.reading_id:
        return False
    if not (fever.fever_ts <= reading.ts <= fever.fever_ts + window):
        return False
    same_cp = reading.checkpoint_id == fever.checkpoint_id
    if same_cp and fever.entry_msg_id and reading.entry_msg_id == fever.entry_msg_id:
        return True
    if fever.passage_id is not None and reading.passage_id == fever.passage_id:
        return True
    return fever.person is not None and reading.person == fever.person


class FeverIndex:
    """Open fevers by what a re-check can share with them (entry, passage, person), so
    a batch of readings is matched in O(readings), not O(readings x open fevers)."""

    def __init__(self, fevers: list[OpenFever]) -> None:
        self.by_entry: dict[tuple[str, str], list[int]] = {}
        self.by_passage: dict[int, list[int]] = {}
        self.by_person: dict[str, list[int]] = {}
        self.fevers = fevers
        for n, fever in enumerate(fevers):
            if fever.entry_msg_id:
                self.by_entry.setdefault((fever.checkpoint_id, fever.entry_msg_id), []).append(n)
            if fever.passage_id is not None:
                self.by_passage.setdefault(fever.passage_id, []).append(n)
            if fever.person is not None:
                self.by_person.setdefault(fever.person, []).append(n)

    def candidates(self, fact: ReadingFact) -> list[OpenFever]:
        """Every open fever `is_normal_recheck` could accept for `fact`, in list order."""
        found: set[int] = set()
        if fact.entry_msg_id:
            found.update(self.by_entry.get((fact.checkpoint_id, fact.entry_msg_id), ()))
        if fact.passage_id is not None:
            found.update(self.by_passage.get(fact.passage_id, ()))
        if fact.person is not None:
            found.update(self.by_person.get(fact.person, ()))
        return [self.fevers[n] for n in sorted(found)]


def _iso(value: datetime) -> str:
    return value.isoformat()
