"""People and vehicles through the gates: a daily rhythm, both directions, incidents.

`Traffic.chunk(c0, c1)` plans one slice of simulated time: who passes where and when,
what they show, whether and how their temperature is taken. It returns entry and
reading items with what ingest is expected to make of each.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from services.core.demo import DemoCheckpoint, DemoCommunity
from services.core.enums import Screening

from .params import SimulationParams
from .population import Population, Shown
from .staffing import DutyRoster

# mean 1 over the day: quiet nights, morning and evening peaks (local hours)
RHYTHM = (
    0.15,
    0.1,
    0.08,
    0.08,
    0.1,
    0.3,
    0.9,
    2.2,
    2.6,
    1.6,
    1.0,
    1.0,
    1.2,
    1.0,
    0.9,
    1.0,
    1.3,
    2.0,
    2.6,
    2.0,
    1.4,
    1.0,
    0.6,
    0.3,
)
RHYTHM_MEAN = sum(RHYTHM) / 24
READING_DELAY_S = (2.0, 20.0)  # a handheld reading follows its entry by this much
MATCH_WINDOW_S = 31.0  # ingest's ±30 s screening window, plus a margin
EDGE_S = 2 * MATCH_WINDOW_S + READING_DELAY_S[1]
NORMAL_TEMP = (35.8, 37.0)
PRO_FORMA_TEMP = 36.5
FEVER_TEMP = (37.5, 39.8)
IMPLAUSIBLE_TEMPS = (24.8, 25.0, 27.5, 46.5, 48.0, 52.0)
IDENTITY_INCIDENTS = (
    "visitor",
    "no_pass",
    "unknown_pass",
    "invalid_id",
    "expired_pass",
    "revoked_pass",
    "borrowed_pass",
)


@dataclass(slots=True)
class PlannedPassage:
    """One passage before it becomes messages."""

    t: float
    checkpoint: DemoCheckpoint
    direction: str
    kind: str
    shown: Shown
    incident: str | None = None
    temp: float | None = None  # None: nobody takes it
    temp_label: str | None = None  # fever | unscreened | implausible
    unlinked: bool = False  # the reading will not name its entry


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def out_share(local_hour: int, site_kind: str) -> float:
    """Share of passages going out: residents leave in the morning, return at night."""
    if 6 <= local_hour < 10:
        share = 0.75
    elif 16 <= local_hour < 20:
        share = 0.25
    elif local_hour >= 21 or local_hour < 5:
        share = 0.4
    else:
        share = 0.5
    return share if site_kind == "residential" else 1.0 - share


class Traffic:
    def __init__(
        self,
        params: SimulationParams,
        community: DemoCommunity,
        population: Population,
        rosters: dict[str, DutyRoster],
        rng: random.Random,
    ) -> None:
        self.params = params
        self.rates = params.rates
        self.population = population
        self.rosters = rosters
        self.rng = rng
        self.zone = ZoneInfo(params.timezone)
        self.site_kind = {s.id: s.kind for s in community.sites}
        site_people = {s.id: 0 for s in community.sites}
        for person in community.people:
            site_people[person.site_id] += 1
        site_vehicles = {s.id: len(population.vehicles[s.id]) for s in community.sites}
        self.person_per_day: dict[str, float] = {}
        self.vehicle_per_day: dict[str, float] = {}
        for site in community.sites:
            gates = community.checkpoints_of(site.id)
            weights = [_gate_weight(i, cp) for i, cp in enumerate(gates)]
            vehicle_gates = [cp for cp in gates if cp.vehicle_gate]
            for cp, weight in zip(gates, weights, strict=True):
                daily = site_people[site.id] * params.passages_per_person_day
                self.person_per_day[cp.id] = daily * weight / sum(weights)
                self.vehicle_per_day[cp.id] = (
                    site_vehicles[site.id]
                    * params.vehicle_passages_per_vehicle_day
                    / len(vehicle_gates)
                    if cp.vehicle_gate
                    else 0.0
                )
        self.checkpoints = community.checkpoints
        self.no_unlinked: set[str] = set()  # checkpoints whose clock drifts: always link
        self.quarantined = [p for people in population.quarantined.values() for p in people]

    # --- one slice of time -------------------------------------------------------------
    def chunk(self, c0: float, c1: float, forced: list[PlannedPassage]) -> list[PlannedPassage]:
        """Passages with t in [c0, c1), including scenario passages `forced` into it."""
        rng = self.rng
        hour = datetime.fromtimestamp((c0 + c1) / 2, self.zone).hour
        share = (c1 - c0) / 86_400 * RHYTHM[hour] / RHYTHM_MEAN
        passages = list(forced)
        for cp in self.checkpoints:
            kind = self.site_kind[cp.site_id]
            for _ in range(poisson(rng, self.person_per_day[cp.id] * share)):
                passages.append(self.person(cp, rng.uniform(c0, c1), _dir(rng, hour, kind)))
            for _ in range(poisson(rng, self.vehicle_per_day[cp.id] * share)):
                passages.append(self.vehicle(cp, rng.uniform(c0, c1), _dir(rng, hour, kind)))
        attempts = self.rates.quarantine_attempt * len(self.quarantined) * (c1 - c0) / 86_400
        for _ in range(poisson(rng, attempts)):
            passages.append(self.quarantine_attempt(rng.uniform(c0, c1)))
        passages.sort(key=lambda p: (p.t, p.checkpoint.id))
        for passage in passages:
            if passage.kind == "person" and passage.temp_label is None:
                self.screen(passage)
        self.decide_unlinked(passages, c0, c1)
        return passages

    def person(self, cp: DemoCheckpoint, t: float, direction: str) -> PlannedPassage:
        rng, rates = self.rng, self.rates
        roll = rng.random()
        incident: str | None = None
        for name in IDENTITY_INCIDENTS:
            roll -= getattr(rates, name)
            if roll < 0:
                incident = name
                break
        return PlannedPassage(t, cp, direction, "person", *self.identity(cp, incident))

    def identity(self, cp: DemoCheckpoint, incident: str | None) -> tuple[Shown, str | None]:
        """What someone shows for a given identity incident (None: a resident, all in order)."""
        rng, population = self.rng, self.population
        resident = population.resident(rng, cp.site_id)
        if incident == "visitor" or resident is None:
            return Shown(id_number=rng.choice(population.visitors)), "visitor"
        if incident in ("expired_pass", "revoked_pass"):
            pool = population.expired if incident == "expired_pass" else population.revoked
            if pool:
                holder = rng.choice(pool)
                return Shown(holder.id_number, holder.pass_code), incident
            incident = None  # the community has nobody in that state
        if incident == "no_pass":
            return Shown(resident.id_number), incident
        if incident == "unknown_pass":
            return Shown(resident.id_number, f"QR-FAKE-{rng.getrandbits(40):010x}"), incident
        if incident == "invalid_id":
            return Shown(population.invalid_id(rng, resident), resident.pass_code), incident
        if incident == "borrowed_pass":
            lender = population.resident(rng, cp.site_id)
            if lender is not None and lender.index != resident.index:
                return Shown(resident.id_number, lender.pass_code), incident
            incident = None
        return Shown(resident.id_number, resident.pass_code), incident

    def vehicle(self, cp: DemoCheckpoint, t: float, direction: str) -> PlannedPassage:
        rng = self.rng
        vehicle = self.population.vehicle(rng, cp.site_id)
        if vehicle is None or rng.random() < self.rates.unregistered_vehicle:
            plate = rng.choice(self.population.unknown_plates)
            return PlannedPassage(
                t, cp, direction, "vehicle", Shown(plate=plate), "unregistered_vehicle"
            )
        return PlannedPassage(t, cp, direction, "vehicle", Shown(plate=vehicle.plate))

    def quarantine_attempt(self, t: float) -> PlannedPassage:
        rng = self.rng
        person = rng.choice(self.quarantined)
        gates = [cp for cp in self.checkpoints if cp.site_id == person.site_id]
        cp = rng.choice([g for g in gates if not g.vehicle_gate] or gates)
        shown = Shown(person.id_number, person.pass_code)
        return PlannedPassage(t, cp, "out", "person", shown, "quarantine_attempt")

    def screen(self, passage: PlannedPassage, fever: bool | None = None) -> None:
        """Decide the temperature: taken or not, normal, fever or a faulty reading."""
        rng, rates = self.rng, self.rates
        fever = rng.random() < rates.fever if fever is None else fever
        if not fever and rng.random() < rates.unscreened:
            passage.temp, passage.temp_label = None, "unscreened"
            return
        if not passage.checkpoint.integrated_thermometer:
            if not self.rosters[passage.checkpoint.id].on_duty(passage.t):
                passage.temp, passage.temp_label = None, "unstaffed"  # nobody to hold it
                return
            if not fever and rng.random() < rates.implausible_reading:
                passage.temp, passage.temp_label = (
                    rng.choice(IMPLAUSIBLE_TEMPS),
                    "implausible_reading",
                )
                return
            passage.unlinked = rng.random() < rates.unlinked_reading
        span = FEVER_TEMP if fever else NORMAL_TEMP
        passage.temp = round(rng.uniform(*span), 1)
        passage.temp_label = "fever" if fever else "normal"
        if passage.checkpoint.id in self.params.proforma_checkpoints:
            # pro-forma screening: the handheld shows the same whoever passes (a fever
            # goes unseen, which is the harm)
            passage.temp, passage.temp_label = PRO_FORMA_TEMP, "normal"

    def decide_unlinked(self, passages: list[PlannedPassage], c0: float, c1: float) -> None:
        """A reading goes without entry_msg_id only where ingest's ±30 s time window
        can match it to exactly one passage: alone at its gate and direction, and
        far enough from the slice edges that no neighbour outside the slice counts."""
        by_gate: dict[tuple[str, str], list[PlannedPassage]] = {}
        for passage in passages:
            if passage.kind == "person":
                by_gate.setdefault((passage.checkpoint.id, passage.direction), []).append(passage)
        for group in by_gate.values():
            for i, passage in enumerate(group):
                if not passage.unlinked:
                    continue
                near_edge = passage.t - c0 < EDGE_S or c1 - passage.t < EDGE_S
                crowded = (i > 0 and passage.t - group[i - 1].t < EDGE_S) or (
                    i + 1 < len(group) and group[i + 1].t - passage.t < EDGE_S
                )
                drifting = passage.checkpoint.id in self.no_unlinked
                if near_edge or crowded or drifting or passage.temp_label == "implausible_reading":
                    passage.unlinked = False

    def expected_screening(self, passage: PlannedPassage) -> Screening | None:
        if passage.kind != "person" or passage.temp is None:
            return None
        if passage.checkpoint.integrated_thermometer:
            return Screening.ENTRY_TEMP
        if passage.temp_label == "implausible_reading":
            return None
        return Screening.TIME_WINDOW if passage.unlinked else Screening.LINKED_READING


def _gate_weight(index: int, cp: DemoCheckpoint) -> float:
    if cp.vehicle_gate:
        return 0.3
    return 2.0 if index == 0 else 1.0


def _dir(rng: random.Random, hour: int, site_kind: str) -> str:
    return "out" if rng.random() < out_share(hour, site_kind) else "in"
