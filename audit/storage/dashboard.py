"""Read-only queries of the dashboard (``/ui/``): filtered audit pages, review states, runs.

Every function takes the tenant's ``project`` and reads only its rows. The
review state of an audit is its latest review's decision (``approved`` /
``rejected``), or ``awaiting`` for a succeeded audit nobody has reviewed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, select
from sqlalchemy.orm import Session

from audit.storage.listing import audit_conditions, audit_page
from audit.storage.models import Audit, Result, Review

REVIEW_STATES = ("awaiting", "approved", "rejected")
_STATE_OF = {"approve": "approved", "reject": "rejected"}


@dataclass(frozen=True)
class AuditFilters:
    """The audits list's filters; None means "any". Dates: ``after`` inclusive, ``before`` not."""

    status: str | None = None
    verdict: str | None = None
    review: str | None = None
    model: str | None = None  # a model fingerprint (sha256) or a prefix of one
    schedule_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _latest_reviews() -> Any:
    latest = select(func.max(Review.id).label("id")).group_by(Review.audit_id).subquery()
    return (
        select(Review.audit_id, Review.decision)
        .join(latest, latest.c.id == Review.id)
        .subquery("latest_review")
    )


def _review_condition(state: str, latest: Any) -> ColumnElement[bool]:
    reviewed = select(Review.id).where(Review.audit_id == Audit.id).exists()
    if state == "awaiting":
        return and_(Audit.status == "succeeded", not_(reviewed))
    decision = "approve" if state == "approved" else "reject"
    return Audit.id.in_(select(latest.c.audit_id).where(latest.c.decision == decision))


def _conditions(project: str, filters: AuditFilters) -> list[ColumnElement[bool]]:
    conditions = audit_conditions(
        project=project,
        status=filters.status or None,
        verdict=filters.verdict or None,
        schedule_id=filters.schedule_id or None,
        created_after=filters.created_after or None,
        created_before=filters.created_before or None,
    )
    if filters.model:
        conditions.append(Audit.model_sha256.startswith(filters.model, autoescape=True))
    if filters.review:
        conditions.append(_review_condition(filters.review, _latest_reviews()))
    return conditions


def list_audit_page(
    *, session: Session, project: str, filters: AuditFilters, limit: int = 25, offset: int = 0
) -> tuple[list[Audit], int]:
    """One page of a project's audits matching ``filters``, newest first, and the total."""
    conditions = _conditions(project, filters)
    return audit_page(session=session, conditions=conditions, limit=limit, offset=offset)


def review_states(*, session: Session, audits: list[Audit]) -> dict[str, str | None]:
    """Each audit's review state: approved, rejected, awaiting (succeeded, unreviewed) or None."""
    ids = [a.id for a in audits]
    found: dict[str, str] = {}
    if ids:
        latest = _latest_reviews()
        query = select(latest.c.audit_id, latest.c.decision).where(latest.c.audit_id.in_(ids))
        found = {audit_id: decision for audit_id, decision in session.execute(query)}
    states: dict[str, str | None] = {}
    for a in audits:
        if a.id in found:
            states[a.id] = _STATE_OF.get(found[a.id])
        else:
            states[a.id] = "awaiting" if a.status == "succeeded" else None
    return states


def audit_runs(
    *,
    session: Session,
    project: str,
    model_sha256: str | None = None,
    schedule_id: str | None = None,
    limit: int = 50,
) -> list[tuple[Audit, dict[str, Any]]]:
    """The latest ``limit`` succeeded runs of one model fingerprint or one schedule, oldest
    first, each with its results document (the history page's trend)."""
    if (model_sha256 is None) == (schedule_id is None):
        raise ValueError("audit_runs: give exactly one of model_sha256 or schedule_id")
    which = (
        Audit.model_sha256 == model_sha256
        if model_sha256 is not None
        else Audit.schedule_id == schedule_id
    )
    rows = session.execute(
        select(Audit, Result.document)
        .join(Result, Result.audit_id == Audit.id)
        .where(Audit.project == project, Audit.status == "succeeded", which)
        .order_by(Audit.created_at.desc(), Audit.id.desc())
        .limit(limit)
    ).all()
    return [(audit, document) for audit, document in reversed(rows)]


def audits_by_id(*, session: Session, project: str, ids: list[str]) -> dict[str, Audit]:
    """A project's audits by id (ids of other projects are left out)."""
    if not ids:
        return {}
    rows = session.scalars(select(Audit).where(Audit.project == project, Audit.id.in_(ids)))
    return {a.id: a for a in rows}
