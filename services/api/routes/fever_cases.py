"""Fever cases: each fever alert's re-check and disposition, and the time from fever to
disposition per checkpoint. (Deciding a case is resolving its alert: POST
/alerts/{id}/resolve with a disposition as `outcome` and `decided_by`.)"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from statistics import median
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import Session, col, select

from services.api.deps import CurrentKey, SessionDep
from services.api.errors import invalid_field, problem_responses
from services.api.params import FromParam, LimitParam, ToParam, check_window
from services.api.privacy import scope_conditions
from services.core.models import Staff
from services.core.models.roster import DISPOSITION_NAMES, FeverCase, FeverDisposition
from services.core.roster_report import fever_dispositions

router = APIRouter(prefix="/fever-cases", tags=["fever cases"])
ERRORS = problem_responses(401, 403, 422)
DISPOSITIONS = frozenset(d.value for d in FeverDisposition)


def check_fever_resolution(session: Session, outcome: str, decided_by: str | None) -> None:
    """A fever alert resolves only with a disposition and a known deciding staff member."""
    if outcome.strip() not in DISPOSITIONS:
        raise invalid_field("body.outcome", f"a fever needs a disposition: {DISPOSITION_NAMES}")
    if not decided_by:
        raise invalid_field("body.decided_by", "the staff id of who decided is required")
    if session.get(Staff, decided_by) is None:
        raise invalid_field("body.decided_by", f"no such staff member: {decided_by!r}")


class FeverCaseView(BaseModel):
    alert_id: int
    checkpoint_id: str
    direction: str
    fever_at: datetime
    temp_c: float
    recheck_due_at: datetime
    recheck_temp_c: float | None
    recheck_at: datetime | None
    recheck_overdue: bool
    disposition: str | None
    decided_by: str | None
    decided_at: datetime | None


def _window(start: datetime | None, to: datetime | None) -> tuple[datetime, datetime]:
    start, to = check_window(start, to, 92)
    end = to or datetime.now(UTC)
    return start or end - timedelta(days=1), end


@router.get("", response_model=list[FeverCaseView], responses=ERRORS)
def list_cases(
    session: SessionDep,
    actor: CurrentKey,
    start: FromParam = None,
    to: ToParam = None,
    checkpoint_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: LimitParam = 200,
) -> list[FeverCaseView]:
    """Fever cases by fever time (default: the last day), newest first."""
    start, end = _window(start, to)
    now = datetime.now(UTC)
    query = (
        select(FeverCase)
        .where(col(FeverCase.fever_at) >= start, col(FeverCase.fever_at) < end)
        .order_by(col(FeverCase.fever_at).desc())
        .limit(limit)
    )
    if checkpoint_id is not None:
        query = query.where(FeverCase.checkpoint_id == checkpoint_id)
    query = query.where(*scope_conditions(actor, col(FeverCase.checkpoint_id)))
    return [
        FeverCaseView(
            **c.model_dump(exclude={"reading_id", "recheck_reading_id"}),
            recheck_overdue=c.recheck_at is None
            and c.disposition is None
            and c.recheck_due_at < now,
        )
        for c in session.exec(query)
    ]


class CheckpointFeverFigures(BaseModel):
    checkpoint_id: str
    cases: int
    decided: int
    median_minutes_to_disposition: float | None
    max_minutes_to_disposition: float | None
    dispositions: dict[str, int]


@router.get("/metrics", response_model=list[CheckpointFeverFigures], responses=ERRORS)
def case_metrics(
    session: SessionDep, actor: CurrentKey, start: FromParam = None, to: ToParam = None
) -> list[CheckpointFeverFigures]:
    """Per checkpoint: fever cases in the window, how many were decided, the time from
    fever to disposition, and the dispositions."""
    start, end = _window(start, to)
    by_cp: dict[str, list[float | None]] = defaultdict(list)
    kinds: dict[str, Counter[str]] = defaultdict(Counter)
    for row in fever_dispositions(session.connection(), start, end):
        if not actor.may_act_on(row.checkpoint_id):
            continue  # a duty key: its own checkpoints only
        by_cp[row.checkpoint_id].append(row.minutes_to_disposition)
        if row.disposition:
            kinds[row.checkpoint_id][row.disposition] += 1
    out = []
    for cp_id in sorted(by_cp):
        decided = [m for m in by_cp[cp_id] if m is not None]
        out.append(
            CheckpointFeverFigures(
                checkpoint_id=cp_id,
                cases=len(by_cp[cp_id]),
                decided=len(decided),
                median_minutes_to_disposition=round(median(decided), 2) if decided else None,
                max_minutes_to_disposition=max(decided) if decided else None,
                dispositions=dict(sorted(kinds[cp_id].items())),
            )
        )
    return out
