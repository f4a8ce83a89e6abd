"""Comparison and history: ``GET /v1/audits/{a}/compare/{b}``, ``GET /v1/history/models/{sha}``
and ``GET /v1/history/schedules/{id}`` (every role of the project may read them).

An audit of another project is 404, as everywhere: comparing across tenants
reveals nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from audit.api.deps import ReaderToken, SessionDep
from audit.api.errors import ApiError, not_found
from audit.api.schemas import ErrorPublic
from audit.storage.audits import get_audit
from audit.storage.history import MAX_HISTORY, NotComparable, compare_audits, history
from audit.storage.models import Audit, plausible_id
from audit.storage.schedules import get_schedule

router = APIRouter(tags=["history"])


class AuditRef(BaseModel):
    id: str
    name: str
    status: str
    verdict: str | None = None
    created_at: datetime
    model_sha256: str | None = None
    dataset_sha256: str | None = None
    schedule_id: str | None = None


class MetricChange(BaseModel):
    probe: str
    attribute: str | None = None
    group: str | None = None
    metric: str
    a: float
    b: float
    change: float
    a_ci: list[float] | None = None
    b_ci: list[float] | None = None
    test: str | None = None
    p_value: float | None = None
    significant: bool | None = None


class ComparisonPublic(BaseModel):
    """Every shared metric, b minus a, with its test (docs/review.md says which)."""

    a: AuditRef
    b: AuditRef
    verdict: dict[str, Any]
    alpha: float
    metrics: list[MetricChange]
    significant: int
    findings: list[dict[str, Any]]
    only_in_a: int
    only_in_b: int


class HistoryPublic(BaseModel):
    """Runs oldest first, each with its groups' impact ratios; ``series``: one trend per group."""

    model_sha256: str | None = None
    schedule_id: str | None = None
    runs: list[dict[str, Any]]
    series: list[dict[str, Any]]


def _audit(session: Any, project: str, audit_id: str) -> Audit:
    audit = None
    if plausible_id(audit_id):  # an id no row can have is never sent to the database
        audit = get_audit(session=session, project=project, audit_id=audit_id)
    if audit is None:
        raise not_found("audit", audit_id[:100])
    return audit


@router.get(
    "/v1/audits/{a}/compare/{b}",
    response_model=ComparisonPublic,
    summary="Compare two audits metric by metric (b minus a), with significance",
    responses={
        404: {"model": ErrorPublic, "description": "an audit not found in this project"},
        409: {"model": ErrorPublic, "description": "an audit has not succeeded"},
    },
)
def compare_route(
    a: Annotated[str, Path(max_length=100)],
    b: Annotated[str, Path(max_length=100)],
    token: ReaderToken,
    session: SessionDep,
) -> ComparisonPublic:
    first = _audit(session, token.project, a)
    second = _audit(session, token.project, b)
    try:
        return ComparisonPublic.model_validate(compare_audits(session, first, second))
    except NotComparable as exc:
        raise ApiError(409, str(exc)) from None


Limit = Annotated[int, Query(ge=1, le=MAX_HISTORY)]


@router.get(
    "/v1/history/models/{sha256}",
    response_model=HistoryPublic,
    summary="The runs of one model fingerprint and each group's impact-ratio trend",
)
def model_history(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
    token: ReaderToken,
    session: SessionDep,
    limit: Limit = 100,
) -> HistoryPublic:
    found = history(session, project=token.project, model_sha256=sha256, limit=limit)
    return HistoryPublic.model_validate(found)


@router.get(
    "/v1/history/schedules/{schedule_id}",
    response_model=HistoryPublic,
    summary="The runs of one schedule and each group's impact-ratio trend",
    responses={404: {"model": ErrorPublic, "description": "schedule not found"}},
)
def schedule_history(
    schedule_id: Annotated[str, Path(max_length=100)],
    token: ReaderToken,
    session: SessionDep,
    limit: Limit = 100,
) -> HistoryPublic:
    if not plausible_id(schedule_id) or (
        get_schedule(session=session, project=token.project, schedule_id=schedule_id) is None
    ):
        raise not_found("schedule", schedule_id[:100])
    found = history(session, project=token.project, schedule_id=schedule_id, limit=limit)
    return HistoryPublic.model_validate(found)
