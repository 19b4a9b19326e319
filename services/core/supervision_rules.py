"""Pure rules of an inspection: credit codes, marks, the system's own verdict, findings.

Nothing here reads the database or the clock; the API passes in plain data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core.models.supervision import FindingStatus, Mark, MarkIn, SensorMetric

# --- unified social credit code (GB 32100-2015) ---------------------------------------
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_check_char(first17: str) -> str:
    total = sum(
        CREDIT_ALPHABET.index(ch) * w for ch, w in zip(first17, CREDIT_WEIGHTS, strict=True)
    )
    return CREDIT_ALPHABET[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """Why `code` is not a unified social credit code, or None when it is one."""
    if len(code) != 18:
        return "must be 18 characters"
    bad = sorted({ch for ch in code if ch not in CREDIT_ALPHABET})
    if bad:
        return f"characters not allowed: {''.join(bad)!r} (digits and A-Y except I O S V Z)"
    if not code[2:8].isdigit():
        return "characters 3-8 must be the administrative division code (digits)"
    if credit_check_char(code[:17]) != code[17]:
        return "check character does not match"
    return None


def normalize_credit_code(code: str) -> str:
    return code.strip().upper()


# --- marks ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ItemInfo:
    code: str
    sensor_metric: str | None


def mark_problems(
    marks: Sequence[MarkIn], items: Sequence[ItemInfo], *, signing: bool
) -> list[str]:
    """What is wrong with the marks of an inspection on a template whose minor items are
    `items`: unknown or repeated items, a × without a reason, a deadline and "fixed on
    the spot" together; when signing, also a minor item left unmarked or a × with
    neither "fixed on the spot" nor a deadline."""
    known = {item.code for item in items}
    problems: list[str] = []
    seen: set[str] = set()
    for m in marks:
        if m.item_code not in known:
            problems.append(f"{m.item_code}: not a minor item of this checklist")
        if m.item_code in seen:
            problems.append(f"{m.item_code}: marked twice")
        seen.add(m.item_code)
        if m.mark == Mark.FAIL and not (m.reason and m.reason.strip()):
            problems.append(f"{m.item_code}: a × needs the reason")
        if m.mark == Mark.PASS and (m.fixed_on_spot or m.deadline is not None):
            problems.append(f"{m.item_code}: a √ has nothing to rectify")
        if m.fixed_on_spot and m.deadline is not None:
            problems.append(f"{m.item_code}: fixed on the spot or a deadline, not both")
        if signing and m.mark == Mark.FAIL and not m.fixed_on_spot and m.deadline is None:
            problems.append(f"{m.item_code}: a × is fixed on the spot or given a deadline")
    if signing:
        missing = sorted(known - seen)
        if missing:
            problems.append("items not marked: " + ", ".join(missing))
    return problems


def finding_status(mark: MarkIn) -> FindingStatus | None:
    """The rectification state a mark opens: none for √, else on the spot or open."""
    if mark.mark == Mark.PASS:
        return None
    return FindingStatus.FIXED_ON_SPOT if mark.fixed_on_spot else FindingStatus.OPEN


def deadline_problem(mark: MarkIn, inspected_at: datetime) -> str | None:
    if mark.deadline is None:
        return None
    if mark.deadline.tzinfo is None:
        return f"{mark.item_code}: the deadline needs a time zone"
    if mark.deadline <= inspected_at:
        return f"{mark.item_code}: the deadline must be after the inspection"
    return None


# --- the system's own verdict ---------------------------------------------------------
METRIC_FIGURE = {
    SensorMetric.STAFFING: "staffing_coverage",
    SensorMetric.SCREENING: "temperature_coverage",
    SensorMetric.REGISTRATION: "registration_coverage",
    SensorMetric.UPTIME: "device_uptime",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str | None  # pass | fail | None: nothing measured in the period
    value: float | None


def sensor_verdict(metric: str | None, figures: Mapping[str, Any], pass_ratio: float) -> Verdict:
    """The verdict of one sensor-judged item from the coverage figures (the `total` of
    GET /metrics/coverage) of the target's site for the period."""
    if metric is None:
        return Verdict(None, None)
    value = figures.get(METRIC_FIGURE[SensorMetric(metric)])
    if value is None:
        return Verdict(None, None)
    return Verdict(Mark.PASS if float(value) >= pass_ratio else Mark.FAIL, float(value))


def disagrees(mark: str, verdict: str | None) -> bool:
    """The flag of the form: the inspector ticked √ while the data says ×."""
    return mark == Mark.PASS and verdict == Mark.FAIL


def closes(open_item_codes: set[str], marks: Sequence[MarkIn]) -> set[str]:
    """Which open findings (by item code) a later inspection of the same target closes:
    those whose item it marks √."""
    return {m.item_code for m in marks if m.mark == Mark.PASS and m.item_code in open_item_codes}


def is_overdue(status: str, deadline: datetime | None, now: datetime) -> bool:
    return status == FindingStatus.OPEN and deadline is not None and deadline < now
