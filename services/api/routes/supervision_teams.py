"""The supervision teams (督查组) and their members."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from services.api.deps import AdminKey, InspectorKey, SessionDep
from services.api.errors import ApiProblem, problem_responses
from services.api.routes.common import IntId, SlugId, commit_audited, get_or_404
from services.core.models.supervision import (
    SupervisionTeam,
    SupervisionTeamCreate,
    SupervisionTeamPublic,
    TeamMember,
    TeamMemberCreate,
    TeamMemberPublic,
)

router = APIRouter(prefix="/supervision", tags=["supervision"])
ERRORS = problem_responses(401, 403, 404, 409, 422)


class TeamUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    name_zh: str | None = Field(default=None, max_length=100)
    active: bool | None = None


def public(session: Session, team: SupervisionTeam) -> SupervisionTeamPublic:
    members = session.exec(
        select(TeamMember).where(TeamMember.team_id == team.id).order_by(col(TeamMember.id))
    )
    return SupervisionTeamPublic.model_validate(
        {
            **team.model_dump(),
            "members": [TeamMemberPublic.model_validate(m, from_attributes=True) for m in members],
        }
    )


@router.get("/teams", response_model=list[SupervisionTeamPublic], responses=ERRORS)
def list_teams(session: SessionDep, _actor: InspectorKey) -> list[SupervisionTeamPublic]:
    teams = session.exec(select(SupervisionTeam).order_by(col(SupervisionTeam.id)))
    return [public(session, t) for t in teams]


@router.post("/teams", response_model=SupervisionTeamPublic, status_code=201, responses=ERRORS)
def create_team(
    body: SupervisionTeamCreate, session: SessionDep, actor: AdminKey
) -> SupervisionTeamPublic:
    if session.get(SupervisionTeam, body.id) is not None:
        raise ApiProblem(409, f"team {body.id!r} exists")
    team = SupervisionTeam.model_validate(body)
    session.add(team)
    commit_audited(session, actor, "team.create", f"team/{team.id}", body.model_dump(), team)
    return public(session, team)


@router.patch("/teams/{team_id}", response_model=SupervisionTeamPublic, responses=ERRORS)
def update_team(
    team_id: SlugId, body: TeamUpdate, session: SessionDep, actor: AdminKey
) -> SupervisionTeamPublic:
    team = get_or_404(session, SupervisionTeam, team_id, "team")
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is not None or name == "name_zh":
            setattr(team, name, value)
    session.add(team)
    commit_audited(session, actor, "team.update", f"team/{team_id}", changes, team)
    return public(session, team)


@router.post(
    "/teams/{team_id}/members",
    response_model=TeamMemberPublic,
    status_code=201,
    responses=ERRORS,
)
def add_member(
    team_id: SlugId, body: TeamMemberCreate, session: SessionDep, actor: AdminKey
) -> TeamMember:
    get_or_404(session, SupervisionTeam, team_id, "team")
    member = TeamMember(team_id=team_id, **body.model_dump())
    session.add(member)
    commit_audited(
        session, actor, "team.member.add", f"team/{team_id}", {"name": body.name}, member
    )
    return member


@router.delete("/teams/{team_id}/members/{member_id}", status_code=204, responses=ERRORS)
def remove_member(
    team_id: SlugId, member_id: IntId, session: SessionDep, actor: AdminKey
) -> Response:
    member = session.get(TeamMember, member_id)
    if member is None or member.team_id != team_id:
        raise ApiProblem(404, f"no member {member_id} in team {team_id!r}")
    session.delete(member)
    commit_audited(session, actor, "team.member.remove", f"team/{team_id}/{member_id}")
    return Response(status_code=204)
