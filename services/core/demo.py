"""A synthetic community like the reference deployment (Songpingshan, Shenzhen): about
69,000 people, 20 sites, 102 checkpoints staffed around the clock.

Pure and deterministic for a given seed, so `cpmon seed --demo` and the simulator
(which plays the residents and needs their raw ID numbers) build the same community
without sharing anything but the seed. Dates are absolute, so a community generated
today and one generated tomorrow agree on who holds a valid pass.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.core.identity import resident_id_check_char

PASS_VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)
PASS_VALID_UNTIL = datetime(2099, 12, 31, tzinfo=UTC)
PASS_EXPIRED_AT = datetime(2020, 6, 30, tzinfo=UTC)
PASS_REVOKED_AT = datetime(2020, 3, 1, tzinfo=UTC)
QUARANTINE_FROM = datetime(2020, 1, 1, tzinfo=UTC)

# (id prefix, kind, English name, Chinese name, how many sites, checkpoints per site,
#  share of the population living or working there)
SITE_PLAN = (
    ("res", "residential", "Residential compound", "住宅小区", 10, 5, 0.80),
    ("ind", "industrial", "Industrial park", "工业园区", 5, 6, 0.14),
    ("sch", "school", "School", "学校", 3, 4, 0.04),
    ("com", "commercial", "Shopping street", "商业街", 2, 5, 0.02),
)
GATE_NAMES = (
    ("North gate", "北门"),
    ("South gate", "南门"),
    ("East gate", "东门"),
    ("West gate", "西门"),
    ("Vehicle gate", "车行道闸"),
    ("Side gate", "侧门"),
)
# Shenzhen districts first: most residents are local; the rest from across China.
REGION_CODES = ("440305", "440304", "440303", "440306", "430102", "420106", "360102", "510104")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国志文"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class DemoSite:
    id: str
    kind: str
    name: str
    name_zh: str


@dataclass(frozen=True, slots=True)
class DemoCheckpoint:
    id: str
    site_id: str
    name: str
    name_zh: str
    min_staff: int
    integrated_thermometer: bool
    vehicle_gate: bool


@dataclass(frozen=True, slots=True)
class DemoPerson:
    index: int
    id_number: str  # raw: only the simulator sees it; the seed stores a hash
    name: str
    site_id: str
    unit: str
    resident: bool
    pass_code: str
    pass_state: str  # valid | expired | revoked
    quarantined: bool


@dataclass(frozen=True, slots=True)
class DemoVehicle:
    plate: str
    owner_index: int
    site_id: str


@dataclass(frozen=True, slots=True)
class DemoStaff:
    id: str
    name: str
    site_id: str
    role: str  # duty | supervisor
    checkpoint_id: str | None


@dataclass
class DemoCommunity:
    seed: int
    sites: list[DemoSite] = field(default_factory=list)
    checkpoints: list[DemoCheckpoint] = field(default_factory=list)
    people: list[DemoPerson] = field(default_factory=list)
    vehicles: list[DemoVehicle] = field(default_factory=list)
    staff: list[DemoStaff] = field(default_factory=list)

    def checkpoints_of(self, site_id: str) -> list[DemoCheckpoint]:
        return [cp for cp in self.checkpoints if cp.site_id == site_id]


def make_resident_id(rng: random.Random) -> str:
    region = rng.choice(REGION_CODES)
    birth = f"{rng.randint(1945, 2012):04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    first17 = region + birth + f"{rng.randint(0, 999):03d}"
    return first17 + resident_id_check_char(first17)


def make_plate(rng: random.Random) -> str:
    tail = "".join(rng.choice("0123456789" + PLATE_LETTERS) for _ in range(5))
    return "粤B" + tail


def generate_community(
    seed: int = 2020,
    people: int = 69_000,
    vehicles: int = 3_000,
    expired_share: float = 0.01,
    revoked_share: float = 0.005,
    quarantined: int = 60,
) -> DemoCommunity:
    rng = random.Random(seed)
    community = DemoCommunity(seed=seed)
    weights: list[float] = []
    cp_number = 0
    for prefix, kind, name, name_zh, count, per_site, share in SITE_PLAN:
        for n in range(1, count + 1):
            site = DemoSite(f"{prefix}-{n:02d}", kind, f"{name} {n}", f"{name_zh}{n}号")
            community.sites.append(site)
            weights.append(share / count)
            for gate in range(per_site):
                cp_number += 1
                gate_name, gate_zh = GATE_NAMES[gate % len(GATE_NAMES)]
                vehicle_gate = gate_name == "Vehicle gate"
                community.checkpoints.append(
                    DemoCheckpoint(
                        id=f"cp-{cp_number:03d}",
                        site_id=site.id,
                        name=f"{site.name} {gate_name}",
                        name_zh=f"{site.name_zh}{gate_zh}",
                        min_staff=2 if gate == 0 and kind == "residential" else 1,
                        # a third of the gates use a handheld thermometer beside the reader
                        integrated_thermometer=cp_number % 3 != 0,
                        vehicle_gate=vehicle_gate,
                    )
                )
    seen_ids: set[str] = set()
    quarantine_picks = set(rng.sample(range(people), min(quarantined, people)))
    # exact shares (at least one each when asked for), so even a small community has them
    picks = rng.sample(
        range(people), min(people, 2 + round(people * (expired_share + revoked_share)))
    )
    expired_count = max(1, round(people * expired_share)) if expired_share > 0 else 0
    expired_picks = set(picks[:expired_count])
    revoked_picks = set(picks[expired_count:]) if revoked_share > 0 else set()
    for index in range(people):
        id_number = make_resident_id(rng)
        while id_number in seen_ids:
            id_number = make_resident_id(rng)
        seen_ids.add(id_number)
        site = rng.choices(community.sites, weights)[0]
        pass_state = (
            "expired"
            if index in expired_picks
            else "revoked"
            if index in revoked_picks
            else "valid"
        )
        community.people.append(
            DemoPerson(
                index=index,
                id_number=id_number,
                name=rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.randint(1, 2))),
                site_id=site.id,
                unit=f"{rng.randint(1, 30)}栋{rng.randint(1, 33)}{rng.randint(1, 8):02d}",
                resident=site.kind == "residential",
                pass_code=f"QR{seed % 1000:03d}{index:06d}{rng.getrandbits(32):08x}",
                pass_state=pass_state,
                quarantined=index in quarantine_picks,
            )
        )
    plates: set[str] = set()
    for _ in range(vehicles):
        plate = make_plate(rng)
        while plate in plates:
            plate = make_plate(rng)
        plates.add(plate)
        owner = rng.randrange(people)
        community.vehicles.append(DemoVehicle(plate, owner, community.people[owner].site_id))
    for cp in community.checkpoints:
        # three shifts a day, each with its own staff member(s)
        for shift in range(3 * max(cp.min_staff, 1)):
            community.staff.append(
                DemoStaff(
                    id=f"st-{cp.id[3:]}-{shift + 1}",
                    name=rng.choice(SURNAMES) + rng.choice(GIVEN),
                    site_id=cp.site_id,
                    role="duty",
                    checkpoint_id=cp.id,
                )
            )
    for team in range(1, 6):  # the five supervision teams of the article
        community.staff.append(
            DemoStaff(f"sup-{team}", f"督查组{team}", community.sites[0].id, "supervisor", None)
        )
    return community
