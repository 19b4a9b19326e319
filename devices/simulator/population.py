"""Who can turn up at a gate, and what ingest will make of them.

The simulator plays the people of the demo community (it knows their raw ID numbers
and pass codes) plus visitors it makes up. `expected_registration` applies the same
precedence as ingest, over the simulator's own copy of the registry, so the manifest
predicts every passage's registration status exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from services.core.demo import (
    PASS_EXPIRED_AT,
    PASS_REVOKED_AT,
    PASS_VALID_FROM,
    PASS_VALID_UNTIL,
    DemoCommunity,
    DemoPerson,
    DemoVehicle,
    make_plate,
    make_resident_id,
)
from services.core.enums import Registration
from services.core.identity import RESIDENT_ID, is_valid_id, normalize_id
from services.core.models.registry import normalize_plate


@dataclass(frozen=True, slots=True)
class Shown:
    """What a person or vehicle presents at the gate (goes into the entry message)."""

    id_number: str | None = None
    qr_pass: str | None = None
    plate: str | None = None
    id_type: str = RESIDENT_ID


class Population:
    """Pools of people and vehicles per site, visitors, and the registry as ingest sees it."""

    def __init__(self, community: DemoCommunity, seed: int) -> None:
        rng = random.Random(f"population-{seed}")
        self.community = community
        self.by_id: dict[str, DemoPerson] = {normalize_id(p.id_number): p for p in community.people}
        self.by_pass: dict[str, DemoPerson] = {p.pass_code: p for p in community.people}
        self.plates: set[str] = {normalize_plate(v.plate) for v in community.vehicles}
        self.valid: dict[str, list[DemoPerson]] = {s.id: [] for s in community.sites}
        self.quarantined: dict[str, list[DemoPerson]] = {s.id: [] for s in community.sites}
        self.expired: list[DemoPerson] = []
        self.revoked: list[DemoPerson] = []
        for person in community.people:
            if person.quarantined:
                self.quarantined[person.site_id].append(person)
            elif person.pass_state == "expired":
                self.expired.append(person)
            elif person.pass_state == "revoked":
                self.revoked.append(person)
            else:
                self.valid[person.site_id].append(person)
        self.all_valid = [p for people in self.valid.values() for p in people]
        self.vehicles: dict[str, list[DemoVehicle]] = {s.id: [] for s in community.sites}
        for vehicle in community.vehicles:
            self.vehicles[vehicle.site_id].append(vehicle)
        # Visitors come back: a fixed pool of made-up, valid, unregistered ID numbers.
        self.visitors: list[str] = []
        while len(self.visitors) < max(20, len(community.people) // 100):
            candidate = make_resident_id(rng)
            if candidate not in self.by_id and candidate not in self.visitors:
                self.visitors.append(candidate)
        self._validity: dict[tuple[str, str], bool] = {}
        self.unknown_plates: list[str] = []
        while len(self.unknown_plates) < max(20, len(community.vehicles) // 20):
            plate = make_plate(rng)
            if normalize_plate(plate) not in self.plates and plate not in self.unknown_plates:
                self.unknown_plates.append(plate)

    # --- picking -----------------------------------------------------------------------
    def resident(self, rng: random.Random, site_id: str) -> DemoPerson | None:
        pool = self.valid.get(site_id) or self.all_valid
        return rng.choice(pool) if pool else None

    def vehicle(self, rng: random.Random, site_id: str) -> DemoVehicle | None:
        pool = self.vehicles.get(site_id) or self.community.vehicles
        return rng.choice(pool) if pool else None

    @staticmethod
    def invalid_id(rng: random.Random, person: DemoPerson) -> str | None:
        """A number that fails validation: a wrong check digit, a typo'd length, or none."""
        roll = rng.random()
        if roll < 0.2:
            return None
        number = person.id_number
        if roll < 0.4:
            return number[:-2]
        wrong = [c for c in "0123456789X" if c != number[-1]]
        return number[:-1] + rng.choice(wrong)

    # --- what ingest will decide -------------------------------------------------------
    def expected_registration(self, kind: str, shown: Shown, at: datetime) -> Registration:
        """The registration precedence of ingest, over the simulator's copy of the registry."""
        if kind == "vehicle":
            plate = normalize_plate(shown.plate or "")
            registered = bool(plate) and plate in self.plates
            return Registration.REGISTERED if registered else Registration.UNREGISTERED_VEHICLE
        if not shown.id_number or not self._valid(shown):
            return Registration.INVALID_ID
        person = self.by_id.get(normalize_id(shown.id_number))
        if person is None:
            return Registration.UNKNOWN_PERSON
        if not shown.qr_pass:
            return Registration.NO_PASS
        holder = self.by_pass.get(shown.qr_pass)
        if holder is None:
            return Registration.UNKNOWN_PASS
        if holder.index != person.index:
            return Registration.PASS_MISMATCH
        if holder.pass_state == "revoked" and at >= PASS_REVOKED_AT:
            return Registration.REVOKED_PASS
        valid_until = PASS_EXPIRED_AT if holder.pass_state == "expired" else PASS_VALID_UNTIL
        if at < PASS_VALID_FROM or at >= valid_until:
            return Registration.EXPIRED_PASS
        return Registration.REGISTERED

    def _valid(self, shown: Shown) -> bool:
        """Whether the shown ID number passes validation, remembered: the same few
        thousand numbers come back all week (check digits were ~40 % of a history's
        generation time)."""
        if not shown.id_number:
            return False
        key = (shown.id_number, shown.id_type)
        valid = self._validity.get(key)
        if valid is None:
            valid = self._validity[key] = is_valid_id(shown.id_number, shown.id_type)
        return valid

    def is_quarantined(self, shown: Shown) -> bool:
        if not shown.id_number or not self._valid(shown):
            return False
        person = self.by_id.get(normalize_id(shown.id_number))
        return bool(person and person.quarantined)
