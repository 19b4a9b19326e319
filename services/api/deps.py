"""Dependencies of the routes, as `Annotated` aliases (FastAPI template style).

`SessionDep` a database session; `SettingsDep` the settings; `CurrentKey` the
authenticated caller (any role); `AdminKey`, `OfficerKey`, `AlertActorKey`,
`RegistryReaderKey` the same with a role check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from services.api.auth import (
    SESSION_COOKIE,
    Actor,
    find_key,
    find_session_key,
    session_expiry,
)
from services.api.errors import ApiProblem
from services.api.security import FailedAuth
from services.core.enums import Role
from services.core.settings import Settings

log = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY`")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`X-API-Key: KEY` (same keys as Bearer)"
)


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine_dep(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine_dep)]
SessionDep = Annotated[Session, Depends(get_session)]

_UNAUTHENTICATED = {"WWW-Authenticate": 'Bearer realm="checkpoint-monitor"'}


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


API_KEY_HEADERS = ("authorization", "x-api-key")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _session_token(request: Request) -> str | None:
    """The dashboard's session cookie, if any. A write through a cookie must come from
    this origin (SameSite=Strict already keeps other sites' requests from carrying it;
    the Origin check is a second lock)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    origin = request.headers.get("origin")
    if request.method not in SAFE_METHODS and origin is not None:
        # the host only: behind a TLS proxy the API may see http for an https page
        settings: Settings = request.app.state.settings
        own = {request.headers.get("host", ""), urlsplit(settings.dashboard_url).netloc}
        if urlsplit(origin).netloc not in own:
            raise ApiProblem(403, "a session cookie sent from another origin", "forbidden")
    return token[:200]


def _actor_for(request: Request, session: Session, key: str | None) -> Actor:
    """The caller from a key (Bearer or X-API-Key) or, without one, from the dashboard's
    session cookie."""
    failed_auth: FailedAuth = request.app.state.failed_auth
    address = _client_address(request)
    wait = failed_auth.retry_after(address)
    if wait is not None:
        raise ApiProblem(
            429,
            f"too many unknown API keys from this address; try again in {wait} s",
            "too-many-failed-keys",
            headers={"Retry-After": str(wait)},
        )
    token = None if key else _session_token(request)
    if not key and token is None:
        given = request.headers.get("authorization", "").strip()
        if given and not given.lower().startswith("bearer "):
            raise ApiProblem(
                401,
                "the Authorization header must read `Bearer KEY` (the word Bearer, a space, "
                "then the key); or send `X-API-Key: KEY`",
                "missing-api-key",
                headers=_UNAUTHENTICATED,
            )
        if "api_key" in request.query_params:
            # a key in a URL ends up in proxy and access logs: refused, and said why
            raise ApiProblem(
                401,
                "a key in the URL (`?api_key=`) is not accepted, it would be written to "
                "access logs: send `Authorization: Bearer KEY`; a browser opens a session "
                "(`POST /api/v1/session`) whose cookie the stream takes",
                "missing-api-key",
                headers=_UNAUTHENTICATED,
            )
        raise ApiProblem(
            401,
            "no API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY` "
            "(create one with `cpmon apikey create --role viewer`)",
            "missing-api-key",
            headers=_UNAUTHENTICATED,
        )
    if key:
        row = find_key(session, key.strip())
    else:
        settings: Settings = request.app.state.settings
        secret = settings.id_hash_secret.get_secret_value()
        row = find_session_key(session, secret, token or "")
    if row is None:
        request.app.state.metrics.auth_failures.inc()
        what = "API key" if key else "session"
        log.info("auth_failed: unknown or revoked %s from %s", what, address)
        failed_auth.failed(address)
        raise ApiProblem(
            401,
            "unknown or revoked API key" if key else "the session has ended; sign in again",
            "invalid-api-key",
            headers=_UNAUTHENTICATED,
        )
    assert row.id is not None
    return Actor(
        key_id=row.id,
        role=row.role,
        name=row.name,
        scope=row.checkpoint_scope,
        request_id=getattr(request.state, "request_id", None),
        session_expires_s=session_expiry(token) if token is not None else None,
    )


def authenticate(
    request: Request,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_api_key_header)],
) -> Actor:
    key = bearer.credentials if bearer is not None else header_key
    return _actor_for(request, session, key)


CurrentKey = Annotated[Actor, Depends(authenticate)]


def require_roles(*roles: Role) -> Callable[[Actor], Actor]:
    allowed = {role.value for role in roles}
    names = " or ".join(sorted(allowed))

    def check(actor: CurrentKey) -> Actor:
        if actor.role not in allowed:
            raise ApiProblem(
                403, f"this needs the {names} role; the key has role {actor.role}", "forbidden"
            )
        return actor

    return check


AdminKey = Annotated[Actor, Depends(require_roles(Role.ADMIN))]
OfficerKey = Annotated[Actor, Depends(require_roles(Role.OFFICER))]
AlertActorKey = Annotated[Actor, Depends(require_roles(Role.ADMIN, Role.OFFICER, Role.DUTY))]
AlertManagerKey = Annotated[Actor, Depends(require_roles(Role.ADMIN, Role.OFFICER))]
RegistryReaderKey = Annotated[Actor, Depends(require_roles(Role.ADMIN, Role.OFFICER))]
InspectorKey = Annotated[
    Actor, Depends(require_roles(Role.ADMIN, Role.OFFICER, Role.INSPECTOR))
]  # supervision: file inspections; officers and admins see all
