"""Need-to-know on reads: which roles see the longer masked ID form, and which
checkpoints a duty key may read personal-data rows of.

Aggregates (board tiles, coverage) stay community-wide for every role; rows that name
a person (passages, readings, alerts with their details, exports, a checkpoint's recent
passages) are limited to a duty key's own checkpoints.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Engine, false, insert

from services.api.auth import Actor, audit_values
from services.api.errors import ApiProblem
from services.core.enums import Role
from services.core.identity import tail_only
from services.core.settings import Settings
from services.core.tables import audit_t


def sees_full_ids(actor: Actor, settings: Settings) -> bool:
    """`CPM_ID_FULL_VIEW_ROLES` (officer, admin) see `4403**********123X`; everybody else
    `**************123X`."""
    roles = {r.strip() for r in settings.id_full_view_roles.split(",") if r.strip()}
    return actor.role in roles


def shown(row: dict[str, Any], full: bool) -> dict[str, Any]:
    """A row as this caller may see it: the masked ID cut to its tail, in the row and in
    an alert's details."""
    if full:
        return row
    out = dict(row)
    if out.get("id_masked"):
        out["id_masked"] = tail_only(out["id_masked"])
    details = out.get("details")
    if isinstance(details, dict) and details.get("id_masked"):
        out["details"] = {**details, "id_masked": tail_only(str(details["id_masked"]))}
    return out


def scope_conditions(actor: Actor, column: Any) -> list[ColumnElement[bool]]:
    """For a duty key: only its own checkpoints' rows (none when it has none)."""
    if actor.role != Role.DUTY:
        return []
    if not actor.scope:
        return [false()]
    return [column.in_(sorted(actor.scope))]


def audit_bulk_read(engine: Engine, actor: Actor, action: str, detail: dict[str, Any]) -> None:
    """A bulk read of personal data (an export, the people list) leaves a record: who,
    when, with which filters."""
    with engine.begin() as conn:
        conn.execute(insert(audit_t), audit_values(actor, action, action.split(".")[0], detail))


def check_scope(actor: Actor, checkpoint_id: str | None) -> None:
    if actor.role == Role.DUTY and not actor.may_act_on(checkpoint_id):
        raise ApiProblem(403, "this duty key does not cover that checkpoint", "forbidden")
