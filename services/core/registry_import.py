"""Bulk CSV import of the registry: sites, checkpoints, staff, people, passes, vehicles.

Each row is validated on its own and every problem is reported precisely (CSV line
number, column, message). Two modes: `all_or_nothing` writes nothing unless every row is
good; `skip_bad_rows` writes the good rows and reports the others. Raw ID numbers are
hashed here and never kept (a bad one is reported by line and column, not echoed).
Used by the API (`POST /api/v1/registry/import/{entity}`) and `cpmon registry import`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, ValidationError
from sqlalchemy import Connection, Engine, Table, insert, select

from services.core.db import utcnow
from services.core.identity import (
    RESIDENT_ID,
    hash_id,
    is_valid_id,
    mask_id,
    masked_text,
    refuse_id_number,
)
from services.core.models import Checkpoint, CheckpointState, Pass, Person, Site, Staff, Vehicle
from services.core.models.registry import (
    CheckpointCreate,
    SiteCreate,
    StaffCreate,
    normalize_plate,
)
from services.core.tables import table_of

MAX_ERRORS = 1000  # a report longer than this helps nobody


class ImportMode(StrEnum):
    ALL_OR_NOTHING = "all_or_nothing"
    SKIP_BAD_ROWS = "skip_bad_rows"


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # CSV line number; the header is line 1
    field: str | None
    message: str


@dataclass(slots=True)
class ImportResult:
    entity: str
    mode: ImportMode
    rows: int = 0
    imported: int = 0
    skipped: int = 0
    committed: bool = False
    errors: list[RowError] = field(default_factory=list)


# --- row models (what a CSV row may hold) ---------------------------------------------
class PersonRow(BaseModel):
    name: Annotated[str, AfterValidator(masked_text)] = Field(min_length=1, max_length=200)
    id_number: str = Field(min_length=5, max_length=40)
    id_type: str = Field(default=RESIDENT_ID, max_length=20)
    site_id: str | None = Field(default=None, max_length=64)
    unit: Annotated[str | None, AfterValidator(masked_text)] = Field(default=None, max_length=100)
    resident: bool = True


class PassRow(BaseModel):
    id_number: str | None = Field(default=None, min_length=5, max_length=40)
    id_type: str = Field(default=RESIDENT_ID, max_length=20)
    person_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    code: Annotated[str, AfterValidator(refuse_id_number)] = Field(min_length=4, max_length=128)
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None


class VehicleRow(BaseModel):
    plate: str = Field(min_length=1, max_length=16)
    owner_id_number: str | None = Field(default=None, min_length=5, max_length=40)
    owner_person_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    site_id: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=200)
    active: bool = True


@dataclass(frozen=True, slots=True)
class Entity:
    model: type[BaseModel]
    table: Any
    required: tuple[str, ...]


# every entity the import takes: the API route's path parameter and the CLI's choices
# (roster_import.py registers the last two)
EntityName = Literal[
    "sites", "checkpoints", "staff", "people", "passes", "vehicles", "rosters", "staff_checkpoints"
]

ENTITIES: dict[str, Entity] = {
    "sites": Entity(SiteCreate, Site, ("id", "name")),
    "checkpoints": Entity(CheckpointCreate, Checkpoint, ("id", "site_id", "name")),
    "staff": Entity(StaffCreate, Staff, ("id", "name")),
    "people": Entity(PersonRow, Person, ("name", "id_number")),
    "passes": Entity(PassRow, Pass, ("code", "valid_from")),
    "vehicles": Entity(VehicleRow, Vehicle, ("plate",)),
}


def _table(model: Any) -> Table:
    table = table_of(model)
    return table


class _Context:
    """What the rows are checked against: keys already stored and keys seen in the file."""

    def __init__(self, conn: Connection, secret: str) -> None:
        self.conn = conn
        self.secret = secret
        self._cache: dict[str, set[Any]] = {}
        self.person_by_hash: dict[str, int] | None = None

    def keys(self, name: str, column: Any) -> set[Any]:
        if name not in self._cache:
            self._cache[name] = {v for (v,) in self.conn.execute(select(column))}
        return self._cache[name]

    def person_id(self, id_number: str, id_type: str) -> int | None:
        if self.person_by_hash is None:
            t = _table(Person)
            rows = self.conn.execute(select(t.c.id_hash, t.c.id))
            self.person_by_hash = {id_hash: person_id for id_hash, person_id in rows}
        return self.person_by_hash.get(hash_id(self.secret, id_number))


class RowProblem(Exception):
    def __init__(self, field_name: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


def _unique(ctx: _Context, name: str, column: Any, value: Any, field_name: str, what: str) -> None:
    seen = ctx.keys(name, column)
    if value in seen:
        raise RowProblem(field_name, f"{what} {value!r} exists (in the registry or above)")
    seen.add(value)


def _ref(ctx: _Context, name: str, column: Any, value: Any, field_name: str, what: str) -> None:
    if value is not None and value not in ctx.keys(name, column):
        raise RowProblem(field_name, f"no such {what}: {value!r}")


def _resolve_person(
    ctx: _Context,
    id_number: str | None,
    id_type: str,
    person_id: int | None,
    id_field: str,
    pid_field: str,
) -> int | None:
    if id_number is not None:
        if not is_valid_id(id_number, id_type):
            raise RowProblem(id_field, "not a valid ID number")
        found = ctx.person_id(id_number, id_type)
        if found is None:
            raise RowProblem(id_field, "no registered person has this ID number")
        return found
    _ref(ctx, "person", _table(Person).c.id, person_id, pid_field, "person")
    return person_id


def _site_row(ctx: _Context, row: BaseModel) -> dict[str, Any]:
    assert isinstance(row, SiteCreate)
    _unique(ctx, "site", _table(Site).c.id, row.id, "id", "site")
    return row.model_dump()


def _checkpoint_row(ctx: _Context, row: BaseModel) -> dict[str, Any]:
    assert isinstance(row, CheckpointCreate)
    _ref(ctx, "site", _table(Site).c.id, row.site_id, "site_id", "site")
    _unique(ctx, "checkpoint", _table(Checkpoint).c.id, row.id, "id", "checkpoint")
    return row.model_dump()


def _staff_row(ctx: _Context, row: BaseModel) -> dict[str, Any]:
    assert isinstance(row, StaffCreate)
    _ref(ctx, "site", _table(Site).c.id, row.site_id, "site_id", "site")
    _unique(ctx, "staff", _table(Staff).c.id, row.id, "id", "staff member")
    return row.model_dump()


def _person_row(ctx: _Context, row: BaseModel) -> dict[str, Any]:
    assert isinstance(row, PersonRow)
    if not is_valid_id(row.id_number, row.id_type):
        raise RowProblem("id_number", "not a valid ID number (shape, birth date or check digit)")
    _ref(ctx, "site", _table(Site).c.id, row.site_id, "site_id", "site")
    id_hash = hash_id(ctx.secret, row.id_number)
    seen = ctx.keys("person_hash", _table(Person).c.id_hash)
    if id_hash in seen:
        raise RowProblem("id_number", "a person with this ID number is already registered")
    seen.add(id_hash)
    values = row.model_dump(exclude={"id_number"})
    values.update(id_hash=id_hash, id_masked=mask_id(row.id_number), created_at=_now())
    return values


def _pass_row(ctx: _Context, row: BaseModel) -> dict[str, Any]:
    assert isinstance(row, PassRow)
    if row.id_number is None and row.person_id is None:
        raise RowProblem("id_number", "give the holder's id_number or person_id")
    person_id = _resolve_person(
        ctx, row.id_number, row.id_type, row.person_id, "id_number", "person_id"
    )
    if row.valid_until is not None and row.valid_until <= row.valid_from:
        raise RowProblem("valid_until", "must be later than valid_from")
    _unique(ctx, "pass", _table(Pass).c.code, row.code, "code", "pass code")
    return {
        "person_id": person_id,
        "code": row.code,
        "valid_from": row.valid_from,
        "valid_until": row.valid_until,
    }


def _vehicle_row(ctx: _Context, row: BaseModel) -> dict[str, Any]:
    assert isinstance(row, VehicleRow)
    plate = normalize_plate(row.plate)
    if not plate:
        raise RowProblem("plate", "a plate needs letters or digits")
    owner = _resolve_person(
        ctx,
        row.owner_id_number,
        RESIDENT_ID,
        row.owner_person_id,
        "owner_id_number",
        "owner_person_id",
    )
    _ref(ctx, "site", _table(Site).c.id, row.site_id, "site_id", "site")
    _unique(ctx, "vehicle", _table(Vehicle).c.plate, plate, "plate", "vehicle")
    return {
        "plate": plate,
        "owner_person_id": owner,
        "site_id": row.site_id,
        "description": row.description,
        "active": row.active,
    }


def _now() -> datetime:
    return utcnow()


CHECKS: dict[str, Callable[[_Context, BaseModel], dict[str, Any]]] = {
    "sites": _site_row,
    "checkpoints": _checkpoint_row,
    "staff": _staff_row,
    "people": _person_row,
    "passes": _pass_row,
    "vehicles": _vehicle_row,
}


def _cells(raw: dict[str | None, Any]) -> dict[str, Any]:
    """Blank cells are absent values, so optional columns may be left empty."""
    return {k.strip(): v.strip() for k, v in raw.items() if k and isinstance(v, str) and v.strip()}


def _add_error(result: ImportResult, error: RowError) -> None:
    if len(result.errors) < MAX_ERRORS:
        result.errors.append(error)


def import_csv(
    engine: Engine,
    entity: str,
    text: str | Iterable[str],
    mode: ImportMode,
    id_hash_secret: str,
    on_commit: Callable[[Connection, ImportResult], None] | None = None,
) -> ImportResult:
    """Validate every row, then write per `mode` in one transaction. `on_commit` runs
    inside that transaction (the API writes its audit record there)."""
    spec = ENTITIES[entity]
    result = ImportResult(entity=entity, mode=mode)
    reader = csv.DictReader(io.StringIO(text) if isinstance(text, str) else text)
    columns = [c.strip() for c in reader.fieldnames or []]
    known = set(spec.model.model_fields)
    problems = [RowError(1, c, "unknown column") for c in columns if c not in known]
    problems += [
        RowError(1, c, "required column missing") for c in spec.required if c not in columns
    ]
    if problems or not columns:
        result.errors = problems or [RowError(1, None, "no header line")]
        return result
    good: list[dict[str, Any]] = []
    with engine.begin() as conn:
        ctx = _Context(conn, id_hash_secret)
        rows = iter(reader)
        while True:
            try:
                raw = next(rows)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a NUL byte: nothing after it can be trusted
                result.rows += 1
                _add_error(result, RowError(reader.line_num, None, f"unreadable CSV: {exc}"))
                break
            line = reader.line_num
            result.rows += 1
            if None in raw:
                _add_error(result, RowError(line, None, "more cells than columns"))
                continue
            try:
                row = spec.model.model_validate(_cells(raw))
                good.append(CHECKS[entity](ctx, row))
            except ValidationError as exc:
                for err in exc.errors():
                    loc = err.get("loc") or ()
                    _add_error(result, RowError(line, str(loc[0]) if loc else None, err["msg"]))
            except RowProblem as exc:
                _add_error(result, RowError(line, exc.field, exc.message))
        if result.errors and mode is ImportMode.ALL_OR_NOTHING:
            result.skipped = result.rows
            return result  # nothing was written: the transaction ends empty
        result.skipped = result.rows - len(good)
        if good:
            conn.execute(insert(_table(spec.table)), good)
            if entity == "checkpoints":
                conn.execute(
                    insert(_table(CheckpointState)),
                    [{"checkpoint_id": r["id"], "device_state": "unknown"} for r in good],
                )
        result.imported = len(good)
        result.committed = True
        if on_commit is not None:
            on_commit(conn, result)
    return result


# rosters and the checkpoints staff may serve import the same way (roster_import.py,
# which registers itself when it finishes loading: this import makes sure it loads;
# when roster_import is the module being loaded first, it is not finished here yet)
from services.core import roster_import  # noqa: E402

if hasattr(roster_import, "register"):
    roster_import.register()
