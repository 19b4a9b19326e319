"""Contact tracing (officer role only; every query audited, found or not)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import or_, select
from sqlmodel import select as orm_select

from services.api.deps import OfficerKey, SessionDep, SettingsDep
from services.api.errors import invalid_field, problem_responses
from services.api.params import check_window
from services.api.routes.common import commit_audited
from services.api.schemas import Contact, TracedPassage, TracingQuery, TracingResult
from services.core.identity import hash_id, is_valid_id, mask_id
from services.core.models import Person
from services.core.tables import passage_t

router = APIRouter(prefix="/tracing", tags=["tracing"])
MAX_DAYS = 60
MAX_PASSAGES = 1000
MAX_CONTACTS = 5000


@router.post(
    "/contacts",
    response_model=TracingResult,
    response_model_by_alias=True,
    summary="A person's passages and who passed the same checkpoints within ±N minutes",
    responses=problem_responses(401, 403, 422),
)
def trace_contacts(
    body: TracingQuery, session: SessionDep, settings: SettingsDep, actor: OfficerKey
) -> TracingResult:
    """The ID number travels in the body (never in a URL, which access logs keep).
    Contacts are returned masked; the query itself is written to the audit log."""
    if not is_valid_id(body.id_number, body.id_type):
        raise invalid_field("body.id_number", "not a valid ID number")
    check_window(body.from_, body.to, MAX_DAYS)
    id_hash = hash_id(settings.id_hash_secret.get_secret_value(), body.id_number)
    person = session.exec(orm_select(Person).where(Person.id_hash == id_hash)).first()
    conn = session.connection()
    t = passage_t.c
    own = list(
        conn.execute(
            select(passage_t)
            .where(t.id_hash == id_hash, t.ts >= body.from_, t.ts < body.to)
            .order_by(t.ts, t.id)
            .limit(MAX_PASSAGES)
        ).mappings()
    )
    window = timedelta(minutes=body.window_minutes)
    contacts: list[Contact] = []
    truncated = False
    for passage in own:
        if len(contacts) >= MAX_CONTACTS:
            truncated = True
            break
        nearby = conn.execute(
            select(t.id, t.person_id, t.id_masked, t.checkpoint_id, t.ts, t.direction)
            .where(
                t.checkpoint_id == passage["checkpoint_id"],
                t.direction.in_(("in", "out")),
                t.ts >= passage["ts"] - window,
                t.ts <= passage["ts"] + window,
                t.kind == "person",
                or_(t.id_hash.is_(None), t.id_hash != id_hash),
            )
            .order_by(t.ts, t.id)
            .limit(MAX_CONTACTS - len(contacts) + 1)
        )
        for row in nearby:
            if len(contacts) >= MAX_CONTACTS:
                truncated = True
                break
            contacts.append(
                Contact(
                    person_id=row.person_id,
                    id_masked=row.id_masked,
                    checkpoint_id=row.checkpoint_id,
                    ts=row.ts,
                    direction=row.direction,
                    passage_id=row.id,
                    near_passage_id=passage["id"],
                    delta_s=(row.ts - passage["ts"]).total_seconds(),
                )
            )
    masked = mask_id(body.id_number)
    commit_audited(
        session,
        actor,
        "tracing.query",
        f"person/{person.id}" if person else "person/unregistered",
        {
            "id_masked": masked,
            "from": body.from_,
            "to": body.to,
            "window_minutes": body.window_minutes,
            "passages": len(own),
            "contacts": len(contacts),
        },
    )
    return TracingResult(
        id_masked=masked,
        person_id=person.id if person else None,
        from_=body.from_,
        to=body.to,
        window_minutes=body.window_minutes,
        passages=[TracedPassage.model_validate(p) for p in own],
        contacts=contacts,
        contacts_truncated=truncated,
    )
