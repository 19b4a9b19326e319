"""People, QR passes and home quarantine. ID numbers come in, hashed; never go out."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field
from sqlmodel import col, select

from services.api.deps import AdminKey, EngineDep, RegistryReaderKey, SessionDep, SettingsDep
from services.api.errors import ApiProblem, invalid_field, problem_responses
from services.api.params import LimitParam
from services.api.privacy import audit_bulk_read
from services.api.routes.common import MAX_INT, IntId, commit_audited, get_or_404, must_exist
from services.api.schemas import Page
from services.core.db import utcnow
from services.core.identity import (
    RESIDENT_ID,
    hash_id,
    is_valid_id,
    mask_id,
    masked_text,
    refuse_id_number,
)
from services.core.models import Pass, Person, Quarantine, Site
from services.core.models.registry import (
    PassPublic,
    PersonCreate,
    PersonPublic,
    QuarantinePublic,
)

router = APIRouter(tags=["registry"])
ERRORS = problem_responses(401, 403, 404, 409, 422)


class PersonUpdate(BaseModel):
    name: Annotated[str | None, AfterValidator(masked_text)] = Field(
        default=None, min_length=1, max_length=200
    )
    site_id: str | None = Field(default=None, max_length=64)
    unit: Annotated[str | None, AfterValidator(masked_text)] = Field(default=None, max_length=100)
    resident: bool | None = None


class IdLookup(BaseModel):
    id_number: str = Field(min_length=5, max_length=40, examples=["11010519491231002X"])
    id_type: str = Field(default=RESIDENT_ID, max_length=20)


class PassIssue(BaseModel):
    person_id: int = Field(ge=1, le=MAX_INT)
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None
    code: Annotated[str | None, AfterValidator(refuse_id_number)] = Field(
        default=None, min_length=4, max_length=128, description="Generated when omitted"
    )


class Revocation(BaseModel):
    reason: str = Field(min_length=1, max_length=200, examples=["lost"])


class QuarantineSet(BaseModel):
    person_id: int = Field(ge=1, le=MAX_INT)
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    reason: str | None = Field(default=None, max_length=200, examples=["returned from Wuhan"])


def person_hash(settings: SettingsDep, id_number: str, id_type: str, field: str) -> str:
    if not is_valid_id(id_number, id_type):
        raise invalid_field(
            field,
            "not a valid resident ID (18 characters, real birth date, check digit)"
            if id_type == RESIDENT_ID
            else "an ID number has 5-40 letters or digits",
        )
    return hash_id(settings.id_hash_secret.get_secret_value(), id_number)


def new_person(settings: SettingsDep, body: PersonCreate) -> Person:
    """The table row for a new person; raises a 422 naming `body.id_number` if invalid."""
    return Person(
        name=masked_text(body.name),
        site_id=body.site_id,
        unit=masked_text(body.unit),
        resident=body.resident,
        id_type=body.id_type,
        id_hash=person_hash(settings, body.id_number, body.id_type, "body.id_number"),
        id_masked=mask_id(body.id_number),
    )


@router.get("/people", response_model=Page[PersonPublic], responses=ERRORS)
def list_people(
    session: SessionDep,
    engine: EngineDep,
    actor: RegistryReaderKey,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=200, description="name contains")] = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,10}$")] = None,
    limit: LimitParam = 100,
) -> Page[PersonPublic]:
    query = select(Person).order_by(col(Person.id))
    if site_id is not None:
        query = query.where(Person.site_id == site_id)
    if name:
        query = query.where(col(Person.name).contains(name, autoescape=True))  # % and _ literal
    if cursor is not None:
        query = query.where(col(Person.id) > int(cursor))
    rows = list(session.exec(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    audit_bulk_read(
        engine,
        actor,
        "people.list",
        {"site_id": site_id, "name_filter": bool(name), "cursor": cursor, "rows": len(rows)},
    )
    return Page[PersonPublic](
        items=[PersonPublic.model_validate(r) for r in rows],
        next_cursor=str(rows[-1].id) if more else None,
    )


@router.post(
    "/people",
    response_model=PersonPublic,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    summary="Register a person (the ID number is hashed; only a masked form is kept)",
)
def create_person(
    body: PersonCreate, session: SessionDep, settings: SettingsDep, actor: AdminKey
) -> PersonPublic:
    must_exist(session, Site, body.site_id, "body.site_id")
    person = new_person(settings, body)
    if session.exec(select(Person).where(Person.id_hash == person.id_hash)).first():
        raise ApiProblem(409, "a person with this ID number is already registered")
    session.add(person)
    session.flush()
    commit_audited(
        session,
        actor,
        "person.create",
        f"person/{person.id}",
        {"id_masked": person.id_masked},
        refresh=person,
    )
    return PersonPublic.model_validate(person)


@router.post(
    "/people/lookup",
    response_model=PersonPublic,
    responses=ERRORS,
    summary="Find a person by ID number (sent in the body, audited)",
)
def lookup_person(
    body: IdLookup, session: SessionDep, settings: SettingsDep, actor: RegistryReaderKey
) -> PersonPublic:
    id_hash = person_hash(settings, body.id_number, body.id_type, "body.id_number")
    person = session.exec(select(Person).where(Person.id_hash == id_hash)).first()
    commit_audited(
        session,
        actor,
        "person.lookup",
        "person",
        {"id_masked": mask_id(body.id_number), "found": person is not None},
    )
    if person is None:
        raise ApiProblem(404, "no person with this ID number")
    return PersonPublic.model_validate(person)


@router.get("/people/{person_id}", response_model=PersonPublic, responses=ERRORS)
def get_person(person_id: IntId, session: SessionDep, _actor: RegistryReaderKey) -> PersonPublic:
    return PersonPublic.model_validate(get_or_404(session, Person, person_id, "person"))


@router.patch("/people/{person_id}", response_model=PersonPublic, responses=ERRORS)
def update_person(
    person_id: IntId, body: PersonUpdate, session: SessionDep, actor: AdminKey
) -> PersonPublic:
    person = get_or_404(session, Person, person_id, "person")
    changes = body.model_dump(exclude_unset=True)
    for required in ("name", "resident"):
        if required in changes and changes[required] is None:
            raise invalid_field(f"body.{required}", "may not be null")
    must_exist(session, Site, changes.get("site_id"), "body.site_id")
    for name, value in changes.items():
        setattr(person, name, value)
    session.add(person)
    commit_audited(session, actor, "person.update", f"person/{person_id}", changes, person)
    return PersonPublic.model_validate(person)


@router.get("/people/{person_id}/passes", response_model=list[PassPublic], responses=ERRORS)
def list_passes(person_id: IntId, session: SessionDep, _actor: RegistryReaderKey) -> list[Pass]:
    get_or_404(session, Person, person_id, "person")
    return list(
        session.exec(select(Pass).where(Pass.person_id == person_id).order_by(col(Pass.id)))
    )


@router.post(
    "/passes",
    response_model=PassPublic,
    status_code=201,
    responses=ERRORS,
    summary="Issue a QR pass",
)
def issue_pass(body: PassIssue, session: SessionDep, actor: AdminKey) -> Pass:
    must_exist(session, Person, body.person_id, "body.person_id")
    if body.valid_until is not None and body.valid_until <= body.valid_from:
        raise invalid_field("body.valid_until", "must be later than valid_from")
    code = body.code or "QR" + secrets.token_hex(10).upper()
    if session.exec(select(Pass).where(Pass.code == code)).first():
        raise ApiProblem(409, "a pass with this code exists")
    row = Pass(
        person_id=body.person_id,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        code=code,
    )
    session.add(row)
    session.flush()
    commit_audited(
        session, actor, "pass.issue", f"pass/{row.id}", {"person_id": body.person_id}, row
    )
    return row


@router.get("/passes/{pass_id}", response_model=PassPublic, responses=ERRORS)
def get_pass(pass_id: IntId, session: SessionDep, _actor: RegistryReaderKey) -> Pass:
    row: Pass = get_or_404(session, Pass, pass_id, "pass")
    return row


@router.post("/passes/{pass_id}/revoke", response_model=PassPublic, responses=ERRORS)
def revoke_pass(pass_id: IntId, body: Revocation, session: SessionDep, actor: AdminKey) -> Pass:
    row: Pass = get_or_404(session, Pass, pass_id, "pass")
    if row.revoked_at is not None:
        raise ApiProblem(409, f"pass {pass_id} was revoked at {row.revoked_at.isoformat()}")
    row.revoked_at = utcnow()
    row.revoked_reason = body.reason
    session.add(row)
    commit_audited(session, actor, "pass.revoke", f"pass/{pass_id}", {"reason": body.reason}, row)
    return row


@router.get("/quarantines", response_model=list[QuarantinePublic], responses=ERRORS)
def list_quarantines(
    session: SessionDep,
    _actor: RegistryReaderKey,
    active: Annotated[bool, Query(description="only those in force now")] = True,
    person_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> list[Quarantine]:
    query = select(Quarantine).order_by(col(Quarantine.id))
    if person_id is not None:
        query = query.where(Quarantine.person_id == person_id)
    rows = list(session.exec(query))
    if active:
        now = utcnow()
        rows = [q for q in rows if is_in_force(q, now)]
    return rows


def is_in_force(q: Quarantine, now: datetime) -> bool:
    return q.lifted_at is None and q.starts_at <= now and (q.ends_at is None or now < q.ends_at)


@router.post(
    "/quarantines",
    response_model=QuarantinePublic,
    status_code=201,
    responses=ERRORS,
    summary="Put a person under home quarantine",
)
def set_quarantine(body: QuarantineSet, session: SessionDep, actor: AdminKey) -> Quarantine:
    must_exist(session, Person, body.person_id, "body.person_id")
    if body.ends_at is not None and body.ends_at <= body.starts_at:
        raise invalid_field("body.ends_at", "must be later than starts_at")
    row = Quarantine(
        person_id=body.person_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        reason=body.reason,
        created_by=f"api-key:{actor.key_id}",
    )
    session.add(row)
    session.flush()
    commit_audited(
        session,
        actor,
        "quarantine.set",
        f"quarantine/{row.id}",
        {"person_id": body.person_id},
        row,
    )
    return row


@router.post("/quarantines/{quarantine_id}/lift", response_model=QuarantinePublic, responses=ERRORS)
def lift_quarantine(quarantine_id: IntId, session: SessionDep, actor: AdminKey) -> Quarantine:
    row: Quarantine = get_or_404(session, Quarantine, quarantine_id, "quarantine")
    if row.lifted_at is not None:
        raise ApiProblem(409, f"quarantine {quarantine_id} was already lifted")
    row.lifted_at = utcnow()
    session.add(row)
    commit_audited(session, actor, "quarantine.lift", f"quarantine/{quarantine_id}", None, row)
    return row
