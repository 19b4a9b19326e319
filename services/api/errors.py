"""Every error as an RFC 9457 problem-details JSON object.

`type` is a stable URI per kind of problem, `title` a short summary, `detail` what went
wrong in this request; validation problems add `errors`, each naming its field.

Problems never echo what was submitted: validation errors carry no `input` nor `ctx`,
and every detail, field and message is scrubbed of ID-shaped numbers and cut short
before it is sent (`scrubbed`), whichever route built it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.core.identity import redact_text

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://checkpoint-monitor.invalid/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str = Field(description="Where: e.g. `query.from`, `body.id_number`")
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=[PROBLEM_BASE + "forbidden"])
    title: str = Field(examples=["Forbidden"])
    status: int = Field(examples=[403])
    detail: str = Field(examples=["this needs the admin role; the key has role viewer"])
    instance: str | None = Field(default=None, examples=["/api/v1/people"])
    errors: list[FieldError] | None = None


class ApiProblem(Exception):
    """Raise to answer with a problem; `kind` becomes the last part of `type`."""

    def __init__(
        self,
        status: int,
        detail: str,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or _slug(HTTPStatus(status).phrase)
        self.headers = headers
        self.errors = errors


def invalid_field(field: str, message: str) -> ApiProblem:
    """A 422 naming the field, like the automatic validation errors."""
    return ApiProblem(
        422,
        f"invalid request: {field}: {message}",
        "validation-error",
        errors=[FieldError(field=field, message=message, type="value_error")],
    )


MAX_ECHO = 300


def scrubbed(text: str) -> str:
    """A problem text without ID-shaped numbers (masked to their last four), without
    control characters, and at most `MAX_ECHO` characters long."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in redact_text(text))
    return clean if len(clean) <= MAX_ECHO else clean[: MAX_ECHO - 1] + "…"


def _slug(text: str) -> str:
    return text.lower().replace(" ", "-").replace("'", "")


def problem_response(
    request: Request,
    status: int,
    detail: str,
    kind: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    title = HTTPStatus(status).phrase
    body = Problem(
        type=PROBLEM_BASE + (kind or _slug(title)),
        title=title,
        status=status,
        detail=scrubbed(detail),
        instance=scrubbed(request.url.path),
        errors=[
            FieldError(field=scrubbed(e.field), message=scrubbed(e.message), type=e.type)
            for e in errors
        ]
        if errors is not None
        else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc) or "request"


DATE_ERRORS = ("datetime", "timezone", "date")
DATE_HINT = (
    " (RFC 3339 with an offset, e.g. 2020-02-01T00:00:00+08:00; in a URL write `+` as "
    "`%2B`, or it arrives as a space)"
)


def validation_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors():
        message = str(err.get("msg", "invalid"))
        loc = err.get("loc", ())
        if loc and loc[0] == "query" and str(err.get("type", "")).startswith(DATE_ERRORS):
            message += DATE_HINT
        # never echo a submitted value: it may be an ID number
        out.append(
            FieldError(
                field=_field_name(err.get("loc", ())),
                message=message,
                type=str(err.get("type", "value_error")),
            )
        )
    return out


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.detail, exc.kind, errors=exc.errors, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}"
        return problem_response(
            request, exc.status_code, detail, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc)
        fields = ", ".join(e.field for e in errors[:5])
        return problem_response(
            request, 422, f"invalid request: {fields}", "validation-error", errors=errors
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # a unique or foreign key the route did not check first (a race, usually)
        log.info("integrity error on %s: %s", request.url.path, redact_text(str(exc.orig)))
        return problem_response(
            request, 409, "conflicts with existing data (duplicate or unknown reference)"
        )

    @app.exception_handler(DataError)
    @app.exception_handler(StatementError)
    async def _data(request: Request, exc: StatementError) -> JSONResponse:
        # e.g. a NUL character (PostgreSQL text refuses it) or a number out of range
        log.info(
            "value refused by the database on %s: %s",
            request.url.path,
            redact_text(str(exc.orig)),
        )
        return problem_response(
            request,
            422,
            "a value is not acceptable to the database (a NUL character, or a number or "
            "date out of range)",
            "validation-error",
        )

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable on %s: %s", request.url.path, exc.orig)
        return problem_response(
            request, 503, "the database is unavailable; try again", headers={"Retry-After": "5"}
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "internal error; it has been logged")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem answers."""
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status in statuses
    }


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare every error body where the server sends it, `application/problem+json`
    with the Problem schema (FastAPI puts it under `application/json`, and its own
    validation-error schema on undeclared 422s), so generated clients parse errors."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if not str(status).startswith(("4", "5")) or not content:
                    continue
                content.pop("application/json", None)
                content[PROBLEM_MEDIA_TYPE] = {"schema": PROBLEM_REF}
    return schema


def install_problem_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problem_openapi(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
