"""The roster night: one night (21:00-07:30 local) at five handheld checkpoints, played
as protocol messages, with its roster, its staff and the alerts it must raise.

- `honest`: the night crew (police, medical, community) on time; honest screening;
  a fever whose handheld re-check, by the medic, is normal (decided `recheck_normal`);
- `no_show`: the medic never comes (night role mix broken, and a no-show);
- `left_post`: the community member leaves at 02:00 and nobody replaces them;
- `role_mix`: three on duty, but a volunteer instead of the medic (night role mix);
  a fever whose re-check is a fever again (left for a disposition by people);
- `proforma`: the handheld shows 36.5 °C whoever passes.

Everything expected is in `manifest()`: the alerts (type, checkpoint, subject, from when
they hold and when they end), the on-duty intervals with roles (for recounting coverage),
the fever cases. The requirements are the defaults (services/core/staffing.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.alerts.screening_quality import ScreeningThresholds
from services.core.demo import DemoCommunity, DemoPerson

ROLES = {"p": "police", "m": "medical", "c": "community", "v": "volunteer", "e": "community"}
GRACE = timedelta(minutes=5)  # CPM_STAFFING_GRACE_S default
NO_SHOW_AFTER = timedelta(minutes=15)  # CPM_NO_SHOW_AFTER_S default
LEFT_POST_GRACE = timedelta(minutes=10)  # CPM_LEFT_POST_GRACE_S default
HONEST_TEMPS = (35.8, 37.0)


@dataclass
class Night:
    day: date  # the local date the night starts on
    tz: ZoneInfo
    checkpoints: dict[str, str]  # part -> checkpoint id
    messages: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    staff: list[dict[str, str]] = field(default_factory=list)
    shifts: list[dict[str, str]] = field(default_factory=list)
    intervals: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    fevers: list[dict[str, Any]] = field(default_factory=list)
    _n: int = 0

    def at(self, hhmm: str, next_day: bool = False) -> datetime:
        hour, minute = (int(x) for x in hhmm.split(":"))
        day = self.day + timedelta(days=1) if next_day else self.day
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.tz)

    @property
    def start(self) -> datetime:
        return self.at("21:00")

    @property
    def end(self) -> datetime:
        return self.at("07:30", next_day=True)

    def msg_id(self, prefix: str) -> str:
        self._n += 1
        return f"rn-{prefix}{self._n}"

    def send(self, cp: str, kind: str, body: dict[str, Any]) -> None:
        self.messages.append((cp, kind, body))

    def duty(self, cp: str, staff_id: str, on: datetime, off: datetime | None) -> None:
        """On (and off) duty; `off` None: still there at the end of the night."""
        self.send(
            cp,
            "duty",
            {
                "msg_id": self.msg_id("d"),
                "ts": on.isoformat(),
                "staff_id": staff_id,
                "action": "on",
            },
        )
        if off is not None:
            self.send(
                cp,
                "duty",
                {
                    "msg_id": self.msg_id("d"),
                    "ts": off.isoformat(),
                    "staff_id": staff_id,
                    "action": "off",
                },
            )
        role = next(s["duty_role"] for s in self.staff if s["id"] == staff_id)
        self.intervals.append(
            {
                "checkpoint_id": cp,
                "staff_id": staff_id,
                "role": role,
                "on": on,
                "off": off or self.end,
            }
        )

    def person(
        self, cp: str, at: datetime, who: DemoPerson, temp: float, operator: str | None
    ) -> str:
        entry = self.msg_id("e")
        self.send(
            cp,
            "entry",
            {
                "msg_id": entry,
                "ts": at.isoformat(),
                "direction": "in",
                "kind": "person",
                "id_number": who.id_number,
                "qr_pass": who.pass_code,
            },
        )
        self.reading(cp, at + timedelta(seconds=3), temp, entry, operator)
        return entry

    def reading(self, cp: str, at: datetime, temp: float, entry: str, operator: str | None) -> None:
        body: dict[str, Any] = {
            "msg_id": self.msg_id("r"),
            "ts": at.isoformat(),
            "temp_c": temp,
            "direction": "in",
            "entry_msg_id": entry,
        }
        if operator:
            body["operator"] = operator
        self.send(cp, "reading", body)

    def expect(
        self, kind: str, cp: str, subject: str, holds_from: datetime, ends: datetime | None
    ) -> None:
        self.alerts.append(
            {
                "type": kind,
                "checkpoint_id": cp,
                "subject": subject,
                "holds_from": holds_from,
                "ends": ends,
            }
        )


def last_night(now: datetime, tz: ZoneInfo) -> date:
    """The latest night that ended (07:30) at least an hour before `now`."""
    local = now.astimezone(tz)
    day = local.date() - timedelta(days=1)
    if local - timedelta(hours=1) < datetime(local.year, local.month, local.day, 7, 30, tzinfo=tz):
        day -= timedelta(days=1)
    return day


def build(community: DemoCommunity, now: datetime, timezone: str, seed: int = 17) -> Night:
    tz = ZoneInfo(timezone)
    handheld = [
        cp.id for cp in community.checkpoints if not cp.integrated_thermometer and cp.min_staff == 1
    ]
    parts = ("honest", "no_show", "left_post", "role_mix", "proforma")
    night = Night(last_night(now, tz), tz, dict(zip(parts, handheld, strict=False)))
    rng = random.Random(seed)
    people = [p for p in community.people if p.pass_state == "valid" and not p.quarantined]
    crews = {
        "honest": "pmc",
        "no_show": "pmc",
        "left_post": "pmc",
        "role_mix": "pvc",
        "proforma": "pmc",
    }
    night_start, night_end = night.at("23:00"), night.at("07:00", next_day=True)
    for part, cp in night.checkpoints.items():
        sid = cp.removeprefix("cp-")
        for code in "e" + crews[part]:
            night.staff.append(
                {"id": f"rn-{sid}-{code}", "name": f"{part}-{code}", "duty_role": ROLES[code]}
            )
        night.shifts.append(_shift(cp, f"rn-{sid}-e", night.at("15:00"), night_start, "evening"))
        for code in crews[part]:
            night.shifts.append(_shift(cp, f"rn-{sid}-{code}", night_start, night_end, "night"))
        night.duty(cp, f"rn-{sid}-e", night.at("21:00"), night.at("23:05"))
        for code in crews[part]:
            staff_id = f"rn-{sid}-{code}"
            if part == "no_show" and code == "m":
                continue
            off = night.at("02:00", next_day=True) if part == "left_post" and code == "c" else None
            night.duty(cp, staff_id, night.at("22:50"), off)
    cps = night.checkpoints
    # the broken requirements and what they raise (the night rule ends at 06:00)
    six = night.at("06:00", next_day=True)
    night.expect("staffing_gap", cps["no_show"], "", night_start + GRACE, six)
    night.expect(
        "no_show",
        cps["no_show"],
        f"rn-{cps['no_show'][3:]}-m",
        night_start + NO_SHOW_AFTER,
        night_end,
    )
    left = night.at("02:00", next_day=True)
    night.expect("staffing_gap", cps["left_post"], "", left + GRACE, six)
    night.expect(
        "left_post",
        cps["left_post"],
        f"rn-{cps['left_post'][3:]}-c",
        left + LEFT_POST_GRACE,
        night_end,
    )
    night.expect("staffing_gap", cps["role_mix"], "", night_start + GRACE, six)
    # screening: honest readings at two checkpoints, a fixed 36.5 at the pro-forma one
    for part in ("honest", "proforma", "role_mix"):
        cp = cps[part]
        at = night.at("21:30")
        for k in range(40):
            at += timedelta(seconds=rng.uniform(240, 600))
            temp = 36.5 if part == "proforma" else round(rng.uniform(*HONEST_TEMPS), 1)
            night.person(cp, at, people[(k * 7 + len(part)) % len(people)], temp, f"rn-{cp[3:]}-c")
    # suspect once the run of equal readings is long enough (its default threshold)
    run = [m for m in night.messages if m[0] == cps["proforma"] and m[1] == "reading"]
    nth = datetime.fromisoformat(run[ScreeningThresholds().identical_run - 1][2]["ts"])
    night.expect("screening_suspect", cps["proforma"], "lane:in", nth, None)
    # fevers: one re-checked normal by the medic, one re-checked feverish
    honest, mix = cps["honest"], cps["role_mix"]
    fever_at = night.at("01:00", next_day=True)
    entry = night.person(honest, fever_at, people[-1], 38.3, f"rn-{honest[3:]}-c")
    night.reading(honest, fever_at + timedelta(minutes=5), 36.8, entry, f"rn-{honest[3:]}-m")
    night.fevers.append(
        {
            "checkpoint_id": honest,
            "temp_c": 38.3,
            "decided": "recheck_normal",
            "decided_by": f"rn-{honest[3:]}-m",
        }
    )
    fever_at = night.at("03:00", next_day=True)
    entry = night.person(mix, fever_at, people[-2], 38.6, f"rn-{mix[3:]}-c")
    night.reading(mix, fever_at + timedelta(minutes=4), 38.9, entry, f"rn-{mix[3:]}-v")
    night.fevers.append({"checkpoint_id": mix, "temp_c": 38.6, "decided": None, "decided_by": None})
    night.messages.sort(key=lambda m: m[2]["ts"])
    return night


def _shift(cp: str, staff_id: str, starts: datetime, ends: datetime, label: str) -> dict[str, str]:
    return {
        "checkpoint_id": cp,
        "staff_id": staff_id,
        "starts_at": starts.isoformat(),
        "ends_at": ends.isoformat(),
        "label": label,
    }


def csv_text(rows: list[dict[str, str]]) -> str:
    """Rows as CSV with a header (the registry import's input)."""
    header = list(rows[0])
    return "\n".join([",".join(header), *(",".join(r[h] for h in header) for r in rows)]) + "\n"


def manifest(night: Night) -> dict[str, Any]:
    def iso(t: datetime | None) -> str | None:
        return None if t is None else t.isoformat()

    return {
        "start": iso(night.start),
        "end": iso(night.end),
        "checkpoints": night.checkpoints,
        "alerts": [
            {**a, "holds_from": iso(a["holds_from"]), "ends": iso(a["ends"])} for a in night.alerts
        ],
        "fevers": night.fevers,
        "intervals": [{**i, "on": iso(i["on"]), "off": iso(i["off"])} for i in night.intervals],
        "messages": len(night.messages),
    }
