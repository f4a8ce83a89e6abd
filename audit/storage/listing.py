"""Pages of a project's audits: the filters, and one newest-first page with the total.

The API's ``GET /v1/audits`` (:func:`list_audits`) and the dashboard's list
(:func:`audit.storage.dashboard.list_audit_page`) share the plain filters
(:func:`audit_conditions`) and the page query (:func:`audit_page`); each adds its
own model and review filters. Every query is scoped to the caller's project.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from audit.storage.models import Audit, Review
from audit.storage.reviews import APPROVED, AWAITING, REJECTED, REVIEW_STATES

MAX_PAGE = 1000
MAX_OFFSET = 1_000_000_000  # larger offsets are refused (422), never sent to the database


def list_audits(
    *,
    session: Session,
    project: str,
    status: str | None = None,
    verdict: str | None = None,
    model_sha256: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
    review_state: str | None = None,
    schedule_id: str | None = None,
) -> tuple[list[Audit], int]:
    """One page of a project's audits, newest first, and the total matching the filters.

    ``created_after`` is inclusive, ``created_before`` exclusive; ``review_state`` is
    ``awaiting review``, ``approved`` or ``rejected`` (the latest review decides).
    """
    if offset < 0:
        raise ValueError(f"offset: must be >= 0, got {offset}")
    conditions = audit_conditions(
        project=project,
        status=status,
        verdict=verdict,
        schedule_id=schedule_id,
        created_after=created_after,
        created_before=created_before,
    )
    if model_sha256 is not None:
        conditions.append(Audit.model_sha256 == model_sha256)
    if review_state is not None:
        conditions.append(review_state_condition(review_state))
    return audit_page(session=session, conditions=conditions, limit=limit, offset=offset)


def audit_conditions(
    *,
    project: str,
    status: str | None = None,
    verdict: str | None = None,
    schedule_id: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE conditions on a project's audits (None: any; ``created_before`` exclusive)."""
    conditions: list[ColumnElement[bool]] = [Audit.project == project]
    if status is not None:
        conditions.append(Audit.status == status)
    if verdict is not None:
        conditions.append(Audit.verdict == verdict)
    if schedule_id is not None:
        conditions.append(Audit.schedule_id == schedule_id)
    if created_after is not None:
        conditions.append(Audit.created_at >= created_after)
    if created_before is not None:
        conditions.append(Audit.created_at < created_before)
    return conditions


def audit_page(
    *, session: Session, conditions: list[ColumnElement[bool]], limit: int, offset: int
) -> tuple[list[Audit], int]:
    """One page of the audits matching ``conditions``, newest first, and how many match."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit: must be between 1 and {MAX_PAGE}, got {limit}")
    total = session.scalar(select(func.count()).select_from(Audit).where(*conditions)) or 0
    items = session.scalars(
        select(Audit)
        .where(*conditions)
        .order_by(Audit.created_at.desc(), Audit.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(items), int(total)


def review_state_condition(state: str) -> Any:
    """A WHERE condition on audits: their latest review gives ``state``."""
    latest = (
        select(Review.decision)
        .where(Review.audit_id == Audit.id)
        .order_by(Review.created_at.desc(), Review.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    decisions = {APPROVED: "approve", REJECTED: "reject"}
    if state == AWAITING:
        return latest.is_(None)
    if state not in decisions:
        raise ValueError(f"review_state: must be one of {', '.join(REVIEW_STATES)}, got {state!r}")
    return latest == decisions[state]
