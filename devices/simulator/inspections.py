"""The inspection scenario, planned: enterprises resuming, five teams inspecting.

Pure and seeded. `plan_inspections` turns the community's sites and checklists into the
steps a run performs through the real API, in time order, and the manifest of what
those steps must leave behind: enterprises resumed and checked the same day, signed
inspections and how many passed (per checklist), findings fixed on the spot, closed by a
re-inspection, or still open. It follows the API's rules: a later signed inspection of
the same target that marks an item √ closes every open finding of that item.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.core.supervision_rules import credit_check_char

TEAMS = tuple(f"team-{n}" for n in range(1, 6))
SITE_CHECKLIST = {"residential": "residential", "industrial": "industrial"}


@dataclass(frozen=True, slots=True)
class EnterpriseSeed:
    key: int  # position in the import file
    name: str
    credit_code: str
    site_id: str
    resumed_on: date | None


@dataclass(frozen=True, slots=True)
class InspectionStep:
    at: datetime
    kind: str  # lookback | resumption | reinspection
    team_id: str
    checklist: str
    site_id: str | None
    enterprise_key: int | None
    marks: tuple[dict[str, Any], ...]


@dataclass
class InspectionPlan:
    first_day: date
    last_day: date
    enterprises: list[EnterpriseSeed]
    steps: list[InspectionStep]
    manifest: dict[str, Any] = field(default_factory=dict)


def credit_code(seed: int, n: int) -> str:
    body = f"91440305{seed % 1000:03d}{n:06d}"
    return body + credit_check_char(body)


def local(day: date, minutes: int, timezone: str) -> datetime:
    return datetime.combine(day, time(minutes // 60, minutes % 60), ZoneInfo(timezone))


def _marks(
    items: Sequence[str], rng: random.Random, fail_rate: float, at: datetime
) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []
    for code in items:
        if rng.random() >= fail_rate:
            out.append({"item_code": code, "mark": "pass"})
        elif rng.random() < 0.4:
            out.append(
                {
                    "item_code": code,
                    "mark": "fail",
                    "reason": "现场发现不到位",
                    "fixed_on_spot": True,
                }
            )
        else:
            deadline = at + timedelta(days=rng.choice((1, 2)))
            out.append(
                {
                    "item_code": code,
                    "mark": "fail",
                    "reason": "限期整改",
                    "deadline": deadline.isoformat(),
                }
            )
    return tuple(out)


class _Ledger:
    """The findings as the API will hold them, and the manifest's counts."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], list[datetime]] = defaultdict(list)  # (target, item)
        self.findings: Counter[str] = Counter()
        self.signed: Counter[str] = Counter()
        self.passed: Counter[str] = Counter()

    def sign(self, target: str, checklist: str, marks: Sequence[Mapping[str, Any]]) -> None:
        self.signed[checklist] += 1
        self.passed[checklist] += all(m["mark"] == "pass" for m in marks)
        for m in marks:
            key = (target, m["item_code"])
            if m["mark"] == "pass":
                self.findings["closed"] += len(self.open.pop(key, []))
            elif m.get("fixed_on_spot"):
                self.findings["fixed_on_spot"] += 1
            else:
                self.open[key].append(datetime.fromisoformat(m["deadline"]))

    def open_targets(self) -> set[str]:
        return {target for (target, _), deadlines in self.open.items() if deadlines}


def plan_inspections(
    sites: Sequence[Mapping[str, Any]],
    checklist_items: Mapping[str, Sequence[str]],
    start: date,
    days: int,
    timezone: str,
    seed: int,
    enterprises: int = 30,
    visits_per_team_day: int = 3,
    fail_rate: float = 0.08,
    same_day_rate: float = 0.9,
) -> InspectionPlan:
    """`sites`: {id, kind}; `checklist_items`: checklist code -> its minor item codes."""
    rng = random.Random(seed)
    parks = sorted(s["id"] for s in sites if s["kind"] == "industrial")
    targets = sorted(
        (s["id"], SITE_CHECKLIST[s["kind"]]) for s in sites if s["kind"] in SITE_CHECKLIST
    )
    firms = []
    for n in range(enterprises):
        resumes = rng.random() < 0.85
        day = start + timedelta(days=rng.randrange(days)) if resumes else None
        firms.append(
            EnterpriseSeed(n, f"模拟企业{n + 1:03d}", credit_code(seed, n), rng.choice(parks), day)
        )
    ledger = _Ledger()
    steps: list[InspectionStep] = []
    checked_same_day = 0
    late: list[EnterpriseSeed] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        today: list[InspectionStep] = []
        for firm in late:  # missed yesterday: checked the next morning
            at = local(day, 9 * 60 + rng.randrange(120), timezone)
            marks = _marks(checklist_items["enterprise"], rng, fail_rate, at)
            today.append(
                InspectionStep(
                    at, "resumption", rng.choice(TEAMS), "enterprise", None, firm.key, marks
                )
            )
        late = []
        for firm in (f for f in firms if f.resumed_on == day):
            if rng.random() >= same_day_rate:
                late.append(firm)
                continue
            checked_same_day += 1
            at = local(day, 10 * 60 + rng.randrange(9 * 60), timezone)
            marks = _marks(checklist_items["enterprise"], rng, fail_rate, at)
            today.append(
                InspectionStep(
                    at, "resumption", rng.choice(TEAMS), "enterprise", None, firm.key, marks
                )
            )
        revisit = sorted(t for t in ledger.open_targets() if not t.startswith("enterprise:"))
        for team in TEAMS:
            for _ in range(visits_per_team_day):
                site, checklist = rng.choice(targets)
                kind = "lookback"
                if revisit and rng.random() < 0.5:
                    site = revisit.pop()
                    checklist = next(c for s, c in targets if s == site)
                    kind = "reinspection"
                at = local(day, 8 * 60 + rng.randrange(11 * 60), timezone)
                rate = fail_rate if kind == "lookback" else fail_rate / 2
                marks = _marks(checklist_items[checklist], rng, rate, at)
                today.append(InspectionStep(at, kind, team, checklist, site, None, marks))
        today.sort(key=lambda s: s.at)
        for step in today:
            target = step.site_id if step.site_id else f"enterprise:{step.enterprise_key}"
            ledger.sign(target, step.checklist, step.marks)
        steps += today
    last = start + timedelta(days=days - 1)
    resumed = [f for f in firms if f.resumed_on is not None]
    enterprise_checks = ledger.signed["enterprise"]
    plan = InspectionPlan(start, last, firms, steps)
    plan.manifest = {
        "seed": seed,
        "from_day": start.isoformat(),
        "to_day": last.isoformat(),
        "enterprises": {
            "total": len(firms),
            "resumed": len(resumed),
            "checked_same_day": checked_same_day,
            "checks": enterprise_checks,
            "passed": ledger.passed["enterprise"],
        },
        "inspections": {
            "signed": sum(ledger.signed.values()),
            "passed": sum(ledger.passed.values()),
            "by_checklist": {
                code: {"inspections": ledger.signed[code], "passed": ledger.passed[code]}
                for code in sorted(ledger.signed)
            },
        },
        "findings": {
            "open": sum(len(v) for v in ledger.open.values()),
            "fixed_on_spot": ledger.findings["fixed_on_spot"],
            "closed": ledger.findings["closed"],
            "open_deadlines": sorted(d.isoformat() for v in ledger.open.values() for d in v),
        },
    }
    return plan
