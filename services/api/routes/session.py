"""The dashboard's session: its key traded once for an HttpOnly cookie.

A browser page should hold no long-lived secret a script could read, and an
EventSource cannot send headers. So the dashboard sends its key once, as a Bearer
header, to `POST /session`; the answer sets `cpm_session`, a signed token naming the key
and an expiry (`CPM_API_SESSION_HOURS`), HttpOnly, SameSite=Strict, for `/api/v1` only.
Every later request, the alert stream included, authenticates with that cookie; the key
is looked up each time, so revoking it ends its sessions. The key is kept neither in
localStorage nor in any URL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from services.api.auth import SESSION_COOKIE, find_session_key, session_token
from services.api.deps import API_KEY_HEADERS, CurrentKey, SessionDep, SettingsDep
from services.api.errors import ApiProblem, problem_responses
from services.core.models.auth import ApiKey
from services.core.settings import Settings

router = APIRouter(tags=["admin"])
COOKIE_PATH = "/api/v1"


class SessionState(BaseModel):
    signed_in: bool
    key_id: int | None = None
    name: str | None = None
    role: str | None = None
    checkpoints: list[str] | None = Field(
        default=None, description="A duty key's checkpoints; null for the other roles"
    )
    expires_at: datetime | None = None


def _state(row: ApiKey, expires: int) -> SessionState:
    scope = row.checkpoint_scope
    return SessionState(
        signed_in=True,
        key_id=row.id,
        name=row.name,
        role=row.role,
        checkpoints=sorted(scope) if scope is not None else None,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


def _secure(request: Request, settings: Settings) -> bool:
    return request.url.scheme == "https" or settings.dashboard_url.startswith("https:")


@router.get("/session", response_model=SessionState)
def session_state(request: Request, response: Response, session: SessionDep) -> SessionState:
    """Whether this browser has a live session (200 either way, so a signed-out page
    logs no failed request)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return SessionState(signed_in=False)
    row = _find(request, session, token)
    if row is None:
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return SessionState(signed_in=False)
    return _state(row, int(token.split(".")[2]))


def _find(request: Request, session: Session, token: str) -> ApiKey | None:
    settings: Settings = request.app.state.settings
    return find_session_key(session, settings.id_hash_secret.get_secret_value(), token[:200])


@router.post("/session", response_model=SessionState, responses=problem_responses(401, 429))
def open_session(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    actor: CurrentKey,
) -> SessionState:
    """Send the key as `Authorization: Bearer KEY` (or `X-API-Key`); the answer sets the
    session cookie. A cookie cannot open another session."""
    if not any(request.headers.get(h) for h in API_KEY_HEADERS):
        raise ApiProblem(401, "send the API key as a header to open a session", "missing-api-key")
    row = session.get(ApiKey, actor.key_id)
    assert row is not None
    ttl_s = int(settings.api_session_hours * 3600)
    token = session_token(settings.id_hash_secret.get_secret_value(), row, ttl_s)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ttl_s,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request, settings),
    )
    return _state(row, int(time.time()) + ttl_s)


@router.delete("/session", status_code=204)
def close_session(request: Request, settings: SettingsDep) -> Response:
    """Sign out: the cookie is deleted (with or without a live session)."""
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request, settings),
    )
    return response
