"""`POST /api/v1/registry/import/{entity}`: bulk CSV import with a per-row report."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import Connection, insert
from starlette.concurrency import run_in_threadpool

from services.api.auth import audit_values
from services.api.deps import AdminKey, EngineDep, SettingsDep
from services.api.errors import ApiProblem, problem_responses
from services.api.limits import describe
from services.api.schemas import ImportReport, ImportRowError
from services.core.registry_import import (
    ENTITIES,
    EntityName,
    ImportMode,
    ImportResult,
    import_csv,
)
from services.core.tables import audit_t

router = APIRouter(prefix="/registry", tags=["registry"])
EXAMPLE = "name,id_number,site_id,unit,resident\n张伟,11010519491231002X,res-01,3-2-501,true\n"


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, read as it streams in and refused with 413 once it passes `limit` (the
    middleware's bound on the same route is the backstop)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiProblem(413, f"the import is larger than {describe(limit)}")
    return bytes(body)


@router.post(
    "/import/{entity}",
    response_model=ImportReport,
    summary="Import registry rows from CSV (the request body, text/csv)",
    responses=problem_responses(401, 403, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "CSV with a header line. people: name,id_number[,id_type,site_id,"
            "unit,resident]; passes: code,valid_from[,valid_until] and id_number or "
            "person_id; vehicles: plate[,owner_id_number|owner_person_id,site_id,"
            "description,active]; sites: id,name[,name_zh,kind]; checkpoints: id,site_id,"
            "name[,name_zh,min_staff,integrated_thermometer,active,commissioned_at,"
            "decommissioned_at]; staff: id,name[,site_id,role,active,duty_role]; rosters: "
            "checkpoint_id,staff_id,starts_at,ends_at[,label] (times with their offset); "
            "staff_checkpoints: staff_id,checkpoint_id.",
            "content": {"text/csv": {"schema": {"type": "string"}, "example": EXAMPLE}},
        }
    },
)
async def import_registry(
    entity: EntityName,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    actor: AdminKey,
    mode: ImportMode = ImportMode.ALL_OR_NOTHING,
) -> ImportReport:
    """Every row is checked; errors name the CSV line (the header is line 1), the column
    and the problem. `all_or_nothing` writes nothing if any row is bad (`committed` is
    false); `skip_bad_rows` writes the good ones. ID numbers are hashed, never echoed."""
    assert entity in ENTITIES
    content_type = request.headers.get("content-type", "text/csv").split(";")[0].strip()
    if content_type not in ("text/csv", "text/plain", "application/csv"):
        raise ApiProblem(415, f"send the CSV as text/csv, not {content_type}")
    body = await read_limited(request, settings.api_max_import_bytes)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiProblem(422, f"the CSV is not UTF-8 (byte {exc.start})") from None

    def audit(conn: Connection, result: ImportResult) -> None:  # in the import's transaction
        conn.execute(
            insert(audit_t),
            audit_values(
                actor,
                "registry.import",
                f"registry/{entity}",
                {"mode": mode.value, "rows": result.rows, "imported": result.imported},
            ),
        )

    result = await run_in_threadpool(
        import_csv, engine, entity, text, mode, settings.id_hash_secret.get_secret_value(), audit
    )
    return ImportReport(
        entity=entity,
        mode=mode.value,
        rows=result.rows,
        imported=result.imported,
        skipped=result.skipped,
        committed=result.committed,
        errors=[ImportRowError(row=e.row, field=e.field, message=e.message) for e in result.errors],
    )
