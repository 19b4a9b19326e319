"""`/healthz`, `/readyz` and Prometheus `/metrics` (outside /api/v1, no key needed)."""

from __future__ import annotations

import socket

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from services.api.deps import EngineDep, SettingsDep
from services.api.errors import ApiProblem, problem_responses

router = APIRouter(tags=["operations"])
BROKER_TIMEOUT_S = 1.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    broker: str


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The database and the MQTT broker are reachable",
    responses=problem_responses(503),
)
def readyz(engine: EngineDep, settings: SettingsDep) -> Readiness:
    problems = []
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        problems.append(f"database: {type(exc).__name__}")
    broker = settings.mqtt
    try:
        socket.create_connection((broker.host, broker.port), timeout=BROKER_TIMEOUT_S).close()
    except OSError as exc:
        problems.append(f"broker {broker.host}:{broker.port}: {exc.strerror or exc}")
    if problems:
        raise ApiProblem(503, "not ready: " + "; ".join(problems), "not-ready")
    return Readiness(status="ready", database="ok", broker="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "text exposition"}},
)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
