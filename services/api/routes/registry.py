"""Sites, checkpoints (configuration), staff and vehicles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.api.deps import AdminKey, CurrentKey, RegistryReaderKey, SessionDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.routes.common import (
    MAX_INT,
    IntId,
    SlugId,
    commit_audited,
    get_or_404,
    must_exist,
)
from services.core.models import Checkpoint, CheckpointState, Person, Site, Staff, Vehicle
from services.core.models.registry import (
    CheckpointCreate,
    CheckpointPublic,
    SiteCreate,
    SitePublic,
    StaffCreate,
    StaffPublic,
    VehicleCreate,
    VehiclePublic,
    normalize_plate,
)

router = APIRouter(tags=["registry"])
ERRORS = problem_responses(401, 403, 404, 409, 422)


def apply_changes(session: Session, row: Any, changes: dict[str, Any], required: set[str]) -> None:
    for name, value in changes.items():
        if value is None and name in required:
            raise invalid_field(f"body.{name}", "may not be null")
        setattr(row, name, value)
    session.add(row)


def refuse_duplicate(session: Session, model: Any, key: Any, what: str) -> None:
    if session.get(model, key) is not None:
        raise ApiProblem(409, f"{what} {key!r} exists")


# --- sites -----------------------------------------------------------------------------
@router.get("/sites", response_model=list[SitePublic], responses=ERRORS)
def list_sites(session: SessionDep, _actor: CurrentKey) -> list[Site]:
    return list(session.exec(select(Site).order_by(col(Site.id))))


@router.post("/sites", response_model=SitePublic, status_code=201, responses=ERRORS)
def create_site(body: SiteCreate, session: SessionDep, actor: AdminKey) -> Site:
    refuse_duplicate(session, Site, body.id, "site")
    row = Site.model_validate(body)
    session.add(row)
    commit_audited(session, actor, "site.create", f"site/{row.id}", body.model_dump(), row)
    return row


# --- checkpoints -----------------------------------------------------------------------
class CheckpointUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    name_zh: str | None = Field(default=None, max_length=200)
    min_staff: int | None = Field(default=None, ge=0, le=20)
    integrated_thermometer: bool | None = None
    active: bool | None = None


@router.post("/checkpoints", response_model=CheckpointPublic, status_code=201, responses=ERRORS)
def create_checkpoint(body: CheckpointCreate, session: SessionDep, actor: AdminKey) -> Checkpoint:
    refuse_duplicate(session, Checkpoint, body.id, "checkpoint")
    must_exist(session, Site, body.site_id, "body.site_id")
    row = Checkpoint.model_validate(body)
    session.add(row)
    session.flush()
    session.add(CheckpointState(checkpoint_id=row.id, device_state="unknown"))
    commit_audited(
        session, actor, "checkpoint.create", f"checkpoint/{row.id}", body.model_dump(), row
    )
    return row


@router.patch("/checkpoints/{checkpoint_id}", response_model=CheckpointPublic, responses=ERRORS)
def update_checkpoint(
    checkpoint_id: SlugId, body: CheckpointUpdate, session: SessionDep, actor: AdminKey
) -> Checkpoint:
    row: Checkpoint = get_or_404(session, Checkpoint, checkpoint_id, "checkpoint")
    changes = body.model_dump(exclude_unset=True)
    apply_changes(session, row, changes, {"name", "min_staff", "integrated_thermometer", "active"})
    commit_audited(session, actor, "checkpoint.update", f"checkpoint/{checkpoint_id}", changes, row)
    return row


# --- staff -----------------------------------------------------------------------------
class StaffUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    site_id: str | None = Field(default=None, max_length=64)
    role: str | None = Field(default=None, pattern="^(duty|supervisor)$")
    active: bool | None = None
    duty_role: str | None = Field(
        default=None, pattern="^(community|police|medical|security|volunteer)$"
    )


@router.get("/staff", response_model=list[StaffPublic], responses=ERRORS)
def list_staff(
    session: SessionDep,
    _actor: RegistryReaderKey,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[Staff]:
    query = select(Staff).order_by(col(Staff.id))
    if site_id is not None:
        query = query.where(Staff.site_id == site_id)
    return list(session.exec(query))


@router.post("/staff", response_model=StaffPublic, status_code=201, responses=ERRORS)
def create_staff(body: StaffCreate, session: SessionDep, actor: AdminKey) -> Staff:
    refuse_duplicate(session, Staff, body.id, "staff member")
    must_exist(session, Site, body.site_id, "body.site_id")
    row = Staff.model_validate(body)
    session.add(row)
    commit_audited(session, actor, "staff.create", f"staff/{row.id}", body.model_dump(), row)
    return row


@router.patch("/staff/{staff_id}", response_model=StaffPublic, responses=ERRORS)
def update_staff(
    staff_id: SlugId, body: StaffUpdate, session: SessionDep, actor: AdminKey
) -> Staff:
    row: Staff = get_or_404(session, Staff, staff_id, "staff member")
    changes = body.model_dump(exclude_unset=True)
    must_exist(session, Site, changes.get("site_id"), "body.site_id")
    apply_changes(session, row, changes, {"name", "role", "active", "duty_role"})
    commit_audited(session, actor, "staff.update", f"staff/{staff_id}", changes, row)
    return row


# --- vehicles --------------------------------------------------------------------------
class VehicleUpdate(BaseModel):
    owner_person_id: int | None = Field(default=None, ge=1, le=MAX_INT)
    site_id: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=200)
    active: bool | None = None


@router.get("/vehicles", response_model=list[VehiclePublic], responses=ERRORS)
def list_vehicles(
    session: SessionDep,
    _actor: RegistryReaderKey,
    plate: Annotated[str | None, Query(max_length=16)] = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> list[Vehicle]:
    query = select(Vehicle).order_by(col(Vehicle.id))
    if plate is not None:
        query = query.where(Vehicle.plate == normalize_plate(plate))
    if site_id is not None:
        query = query.where(Vehicle.site_id == site_id)
    return list(session.exec(query.limit(limit)))


@router.post("/vehicles", response_model=VehiclePublic, status_code=201, responses=ERRORS)
def create_vehicle(body: VehicleCreate, session: SessionDep, actor: AdminKey) -> Vehicle:
    plate = normalize_plate(body.plate)
    if not plate:
        raise invalid_field("body.plate", "a plate needs letters or digits")
    if session.exec(select(Vehicle).where(Vehicle.plate == plate)).first():
        raise ApiProblem(409, f"vehicle {plate} is registered")
    if body.owner_person_id is not None and not 1 <= body.owner_person_id <= MAX_INT:
        raise invalid_field("body.owner_person_id", "out of range")
    must_exist(session, Person, body.owner_person_id, "body.owner_person_id")
    must_exist(session, Site, body.site_id, "body.site_id")
    row = Vehicle.model_validate(body.model_copy(update={"plate": plate}))
    session.add(row)
    session.flush()
    commit_audited(session, actor, "vehicle.create", f"vehicle/{row.id}", {"plate": plate}, row)
    return row


@router.patch("/vehicles/{vehicle_id}", response_model=VehiclePublic, responses=ERRORS)
def update_vehicle(
    vehicle_id: IntId, body: VehicleUpdate, session: SessionDep, actor: AdminKey
) -> Vehicle:
    row: Vehicle = get_or_404(session, Vehicle, vehicle_id, "vehicle")
    changes = body.model_dump(exclude_unset=True)
    must_exist(session, Person, changes.get("owner_person_id"), "body.owner_person_id")
    must_exist(session, Site, changes.get("site_id"), "body.site_id")
    apply_changes(session, row, changes, {"active"})
    commit_audited(session, actor, "vehicle.update", f"vehicle/{vehicle_id}", changes, row)
    return row
