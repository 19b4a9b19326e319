"""The manifest: exactly what a run injected, counted from the items it executed.

Counts are kept per checkpoint and summed into `totals`. Every count is of distinct
messages (a QoS-1 duplicate is counted under `duplicates`, not twice), which is what
ingest must reproduce from the database.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.core.enums import Registration, Screening

from .incidents import Window
from .plan import Plan
from .timeline import Item, Op

MANIFEST_VERSION = 1


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


@dataclass
class CheckpointCounts:
    passages: Counter[str] = field(default_factory=Counter)  # person_in, vehicle_out...
    registration: Counter[str] = field(default_factory=Counter)
    screening: Counter[str] = field(default_factory=Counter)  # entry_temp, linked_reading...
    persons_screened: int = 0
    persons_unscreened: int = 0
    quarantined_passages: int = 0
    readings: Counter[str] = field(default_factory=Counter)  # thermometer | entry
    fevers: int = 0
    implausible_readings: int = 0
    unlinked_readings: int = 0
    incidents: Counter[str] = field(default_factory=Counter)
    duty: Counter[str] = field(default_factory=Counter)  # on | off
    messages: Counter[str] = field(default_factory=Counter)  # distinct, per kind
    duplicates: Counter[str] = field(default_factory=Counter)  # second copies, per kind
    backlog_messages: Counter[str] = field(default_factory=Counter)
    clock_drift_messages: Counter[str] = field(default_factory=Counter)
    wills_expected: int = 0

    def add(self, item: Item) -> None:
        if item.op is Op.DROP:
            self.wills_expected += 1
            return
        if item.op is not Op.PUBLISH:
            return
        self.messages[item.kind] += 1
        if item.duplicate:
            self.duplicates[item.kind] += 1
            self.incidents["duplicate"] += 1
        if item.backlog:
            self.backlog_messages[item.kind] += 1
        if item.drift_s:
            self.clock_drift_messages[item.kind] += 1
        if item.kind == "duty" and item.message is not None:
            self.duty[str(item.message.action)] += 1  # type: ignore[union-attr]
        if item.passage is not None:
            self._passage(item)
        if item.reading is not None:
            self.readings["thermometer"] += 1
            self.fevers += item.reading.fever
            self.implausible_readings += item.reading.implausible
            self.unlinked_readings += not item.reading.linked

    def _passage(self, item: Item) -> None:
        p = item.passage
        assert p is not None
        self.passages[f"{p.kind}_{p.direction}"] += 1
        self.registration[str(p.registration)] += 1
        self.incidents.update(p.incidents)
        if p.kind == "person":
            self.quarantined_passages += p.quarantined
            if p.screening is None:
                self.persons_unscreened += 1
            else:
                self.persons_screened += 1
                self.screening[str(p.screening)] += 1
            if p.screening is Screening.ENTRY_TEMP:
                self.readings["entry"] += 1
                self.fevers += p.fever

    def merge(self, other: CheckpointCounts) -> None:
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(mine, Counter):
                mine.update(value)
            else:
                setattr(self, name, mine + value)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            out[name] = dict(sorted(value.items())) if isinstance(value, Counter) else value
        out["passages_total"] = sum(self.passages.values())
        out["messages_published"] = sum(self.messages.values()) + sum(self.duplicates.values())
        for status in Registration:
            out["registration"].setdefault(str(status), 0)
        return out


class ManifestBuilder:
    """Feed it every executed item; `build()` gives the manifest as a JSON-ready dict."""

    def __init__(self, plan: Plan, meta: dict[str, Any]) -> None:
        self.plan = plan
        self.meta = meta
        self.per_checkpoint = {cp_id: CheckpointCounts() for cp_id in sorted(plan.checkpoints)}
        self.backlog_by_window: Counter[tuple[str, float]] = Counter()
        self._offline_since: dict[str, float] = {}
        self._last_message: dict[str, float] = {}  # latest live publish per checkpoint
        self.silent_from: dict[tuple[str, float], float] = {}  # (checkpoint, off at) -> t
        self.incidents = 0  # a running total for the progress line

    def add(self, item: Item) -> None:
        self.per_checkpoint[item.checkpoint_id].add(item)
        self.incidents += item.duplicate + (item.op is Op.DROP)
        if item.passage is not None:
            self.incidents += len(item.passage.incidents)
        if item.op in (Op.DROP, Op.DISCONNECT):
            self._offline_since[item.checkpoint_id] = item.t
            last = self._last_message.get(item.checkpoint_id)
            if last is not None:
                self.silent_from[(item.checkpoint_id, item.t)] = last
        elif item.op is Op.PUBLISH and not item.backlog:
            last = self._last_message.get(item.checkpoint_id, item.t)
            self._last_message[item.checkpoint_id] = max(last, item.t)
        if item.backlog and item.op is Op.PUBLISH:
            since = self._offline_since.get(item.checkpoint_id, item.t)
            self.backlog_by_window[(item.checkpoint_id, since)] += 1

    @property
    def totals(self) -> CheckpointCounts:
        total = CheckpointCounts()
        for counts in self.per_checkpoint.values():
            total.merge(counts)
        return total

    def build(self, completed: bool = True, unacknowledged: int = 0) -> dict[str, Any]:
        plan = self.plan
        gaps = {cp_id: roster.gaps() for cp_id, roster in plan.rosters.items()}
        checkpoints: dict[str, Any] = {}
        for cp_id, counts in self.per_checkpoint.items():
            entry = counts.to_dict()
            min_staff = max(plan.checkpoints[cp_id].min_staff, 1)
            entry["staffing_gaps"] = [
                {
                    "start": iso(g.start),
                    "end": iso(g.end),
                    "duration_s": None if g.end is None else round(g.end - g.start, 3),
                    "fewest_on_duty": g.fewest_on_duty,
                    "min_staff": min_staff,
                }
                for g in gaps[cp_id]
            ]
            entry["device_windows"] = [
                self._window(w) for w in plan.windows if w.checkpoint_id == cp_id
            ]
            checkpoints[cp_id] = entry
        totals = self.totals.to_dict()
        totals["staffing_gaps"] = sum(len(g) for g in gaps.values())
        totals["device_windows"] = dict(Counter(w.kind for w in plan.windows))
        return {
            "version": MANIFEST_VERSION,
            **self.meta,
            "start": iso(plan.start),
            "end": iso(plan.end),
            "completed": completed,
            "unacknowledged": unacknowledged,
            "totals": totals,
            "checkpoints": checkpoints,
        }

    def _window(self, window: Window) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": window.kind,
            "start": iso(window.start),
            "end": iso(window.end),
        }
        if window.kind == "drift":
            out["offset_s"] = window.offset_s
        else:
            key = (window.checkpoint_id, window.start)
            out["backlog"] = self.backlog_by_window[key]
            # the device's last message before it went: a silence starts there
            out["last_message"] = iso(self.silent_from.get(key))
        return out


def write_manifest(manifest: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", "utf-8")
