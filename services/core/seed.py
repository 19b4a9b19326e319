"""Load the demo community into the registry (`cpmon seed --demo`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select

from services.core.db import utcnow
from services.core.demo import (
    PASS_EXPIRED_AT,
    PASS_REVOKED_AT,
    PASS_VALID_FROM,
    PASS_VALID_UNTIL,
    QUARANTINE_FROM,
    DemoCommunity,
)
from services.core.identity import hash_id, mask_id
from services.core.tables import (
    checkpoint_t,
    pass_t,
    person_t,
    quarantine_t,
    site_t,
    staff_t,
    state_t,
    vehicle_t,
)

log = logging.getLogger(__name__)
CHUNK = 5_000


def _chunks(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def registry_is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not conn.execute(select(func.count()).select_from(site_t)).scalar_one()


def load_demo(
    engine: Engine,
    community: DemoCommunity,
    id_hash_secret: str,
    commissioned_at: datetime | None = None,
) -> dict[str, int]:
    """Insert the community in one transaction. Refuses a registry that is not empty.
    Its checkpoints go into service at `commissioned_at` (`cpmon seed --demo` and
    `cpmon up` pass the time of loading), so coverage does not count the time before the
    system existed as unstaffed and offline; None leaves the period unbounded."""
    if not registry_is_empty(engine):
        raise RuntimeError("the registry already holds sites; seed into an empty database")
    now = utcnow()
    in_service_from = commissioned_at
    with engine.begin() as conn:
        conn.execute(
            insert(site_t),
            [
                {"id": s.id, "name": s.name, "name_zh": s.name_zh, "kind": s.kind}
                for s in community.sites
            ],
        )
        conn.execute(
            insert(checkpoint_t),
            [
                {
                    "id": cp.id,
                    "site_id": cp.site_id,
                    "name": cp.name,
                    "name_zh": cp.name_zh,
                    "min_staff": cp.min_staff,
                    "integrated_thermometer": cp.integrated_thermometer,
                    "active": True,
                    "commissioned_at": in_service_from,
                }
                for cp in community.checkpoints
            ],
        )
        conn.execute(
            insert(state_t),
            [{"checkpoint_id": cp.id, "device_state": "unknown"} for cp in community.checkpoints],
        )
        conn.execute(
            insert(staff_t),
            [
                {"id": s.id, "name": s.name, "site_id": s.site_id, "role": s.role, "active": True}
                for s in community.staff
            ],
        )
        for chunk in _chunks(
            {
                "id": p.index + 1,
                "name": p.name,
                "site_id": p.site_id,
                "unit": p.unit,
                "resident": p.resident,
                "id_type": "resident_id",
                "id_hash": hash_id(id_hash_secret, p.id_number),
                "id_masked": mask_id(p.id_number),
                "created_at": now,
            }
            for p in community.people
        ):
            conn.execute(insert(person_t), chunk)
        for chunk in _chunks(
            {
                "person_id": p.index + 1,
                "code": p.pass_code,
                "valid_from": PASS_VALID_FROM,
                "valid_until": PASS_EXPIRED_AT if p.pass_state == "expired" else PASS_VALID_UNTIL,
                "revoked_at": PASS_REVOKED_AT if p.pass_state == "revoked" else None,
                "revoked_reason": "demo: revoked" if p.pass_state == "revoked" else None,
            }
            for p in community.people
        ):
            conn.execute(insert(pass_t), chunk)
        conn.execute(
            insert(vehicle_t),
            [
                {
                    "plate": v.plate,
                    "owner_person_id": v.owner_index + 1,
                    "site_id": v.site_id,
                    "active": True,
                }
                for v in community.vehicles
            ],
        )
        quarantines = [
            {
                "person_id": p.index + 1,
                "starts_at": QUARANTINE_FROM,
                "reason": "demo: home quarantine",
                "created_by": "seed",
            }
            for p in community.people
            if p.quarantined
        ]
        if quarantines:
            conn.execute(insert(quarantine_t), quarantines)
        if conn.dialect.name == "postgresql":
            # explicit ids were inserted: move the sequence past them
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('person', 'id'), "
                "(SELECT COALESCE(MAX(id), 1) FROM person))"
            )
    with engine.begin() as conn:
        # fresh statistics, or the planner takes 69,000 people for a handful and scans
        conn.exec_driver_sql("ANALYZE")
    counts = {
        "sites": len(community.sites),
        "checkpoints": len(community.checkpoints),
        "staff": len(community.staff),
        "people": len(community.people),
        "vehicles": len(community.vehicles),
        "quarantined": len(quarantines),
    }
    log.info("demo community loaded: %s", counts)
    return counts
