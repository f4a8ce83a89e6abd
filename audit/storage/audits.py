"""Audits: creation (with idempotency keys), tenant-scoped reads, results and reviews.

The caller owns the transaction (``with session_scope() as session: ...``);
these functions flush but never commit. Every read the API makes takes the
``project`` so one tenant cannot see another's rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.storage.accounts import ensure_project, insert_ignore
from audit.storage.models import (
    AUDIT_STATUSES,
    DECISIONS,
    Audit,
    FindingRow,
    Result,
    Review,
    new_id,
    utcnow,
)

MAX_PAGE = 1000


class AuditNotFound(LookupError):
    """No audit with this id (in this project)."""


class IdempotencyConflict(ValueError):
    """An idempotency key was reused with a different spec."""


# ---------------------------------------------------------------- create / read


def create_audit(
    *,
    session: Session,
    project: str,
    spec: dict[str, Any],
    name: str,
    domain: str,
    spec_sha256: str,
    idempotency_key: str | None = None,
    status: str = "queued",
    dataset_sha256: str | None = None,
    model_sha256: str | None = None,
    schedule_id: str | None = None,
    token_id: int | None = None,
    project_exists: bool = False,
) -> Audit:
    """Insert an audit, or return the existing one when ``idempotency_key`` repeats.

    A repeated key with a different ``spec_sha256`` raises ``IdempotencyConflict``
    (the client reused a key for another request). The project row is created
    on first use, unless the caller knows it exists (``project_exists=True``: the
    API's caller holds a live token, whose row references the project), which
    saves a round trip per submission; the foreign key still refuses a missing one.
    """
    if status not in AUDIT_STATUSES:
        raise ValueError(f"status: must be one of {', '.join(AUDIT_STATUSES)}, got {status!r}")
    if not project_exists:
        ensure_project(session=session, name=project)
    values: dict[str, Any] = {
        "project": project,
        "name": name,
        "domain": domain,
        "status": status,
        "spec": spec,
        "spec_sha256": spec_sha256,
        "dataset_sha256": dataset_sha256,
        "model_sha256": model_sha256,
        "schedule_id": schedule_id,
        "token_id": token_id,
        "idempotency_key": idempotency_key,
    }
    if idempotency_key is None:
        audit = Audit(**values)
        session.add(audit)
        session.flush()
        return audit
    # INSERT ... ON CONFLICT DO NOTHING: a concurrent twin waits, then finds the row.
    row = {
        **values,
        "id": new_id(),
        "progress": 0.0,
        "attempts": 0,
        "cancel_requested": False,
        "created_at": utcnow(),
    }
    session.execute(
        insert_ignore(session, Audit, index_elements=["project", "idempotency_key"]).values(row)
    )
    existing = session.scalars(
        select(Audit)
        .where(Audit.project == project, Audit.idempotency_key == idempotency_key)
        .execution_options(populate_existing=True)
    ).one()
    if existing.spec_sha256 != spec_sha256:
        raise IdempotencyConflict(
            f"Idempotency-Key {idempotency_key!r} was already used for audit {existing.id} "
            "with a different spec; use a new key for a new request"
        )
    return existing


def get_audit(*, session: Session, project: str, audit_id: str) -> Audit | None:
    """The audit with this id in this project, or None (also for other projects' ids)."""
    return session.scalars(
        select(Audit).where(Audit.id == audit_id, Audit.project == project)
    ).one_or_none()


def load_audit(*, session: Session, audit_id: str) -> Audit | None:
    """The audit by id across projects: for workers and the scheduler, never the API."""
    return session.get(Audit, audit_id, populate_existing=True)


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
) -> tuple[list[Audit], int]:
    """One page of a project's audits, newest first, and the total matching the filters.

    ``created_after`` is inclusive, ``created_before`` exclusive.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit: must be between 1 and {MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset: must be >= 0, got {offset}")
    conditions = [Audit.project == project]
    if status is not None:
        conditions.append(Audit.status == status)
    if verdict is not None:
        conditions.append(Audit.verdict == verdict)
    if model_sha256 is not None:
        conditions.append(Audit.model_sha256 == model_sha256)
    if created_after is not None:
        conditions.append(Audit.created_at >= created_after)
    if created_before is not None:
        conditions.append(Audit.created_at < created_before)
    total = session.scalar(select(func.count()).select_from(Audit).where(*conditions)) or 0
    items = session.scalars(
        select(Audit)
        .where(*conditions)
        .order_by(Audit.created_at.desc(), Audit.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(items), int(total)


def get_results(*, session: Session, project: str, audit_id: str) -> dict[str, Any] | None:
    """The stored results document of a project's audit, or None."""
    return session.scalar(
        select(Result.document)
        .join(Audit, Audit.id == Result.audit_id)
        .where(Result.audit_id == audit_id, Audit.project == project)
    )


def list_findings(*, session: Session, audit_id: str) -> list[FindingRow]:
    """The stored findings of an audit, in results.json order."""
    return list(
        session.scalars(
            select(FindingRow).where(FindingRow.audit_id == audit_id).order_by(FindingRow.id)
        )
    )


# ---------------------------------------------------------------- reviews


def add_review(
    *,
    session: Session,
    project: str,
    audit_id: str,
    decision: str,
    comment: str | None = None,
    token_id: int | None = None,
    reviewer: str | None = None,
) -> Review:
    """Record a reviewer's decision on a project's finished audit."""
    if decision not in DECISIONS:
        raise ValueError(f"decision: must be one of {', '.join(DECISIONS)}, got {decision!r}")
    audit = get_audit(session=session, project=project, audit_id=audit_id)
    if audit is None:
        raise AuditNotFound(f"audit {audit_id!r} not found")
    if audit.status != "succeeded":
        raise ValueError(
            f"audit {audit_id}: is {audit.status}; only succeeded audits can be reviewed"
        )
    review = Review(
        audit_id=audit_id, decision=decision, comment=comment, token_id=token_id, reviewer=reviewer
    )
    session.add(review)
    session.flush()
    return review


def list_reviews(*, session: Session, project: str, audit_id: str) -> list[Review]:
    """A project's audit's reviews, oldest first."""
    return list(
        session.scalars(
            select(Review)
            .join(Audit, Audit.id == Review.audit_id)
            .where(Review.audit_id == audit_id, Audit.project == project)
            .order_by(Review.created_at, Review.id)
        )
    )
