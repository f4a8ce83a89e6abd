"""Audits: creation (with idempotency keys), tenant-scoped reads, results and reviews.

Pages of a project's audits (the API's list, the dashboard's) are in
:mod:`audit.storage.listing`.

The caller owns the transaction (``with session_scope() as session: ...``);
these functions flush but never commit. Every read the API makes takes the
``project`` so one tenant cannot see another's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from audit.storage.accounts import ensure_project, insert_ignore
from audit.storage.events import append_event, append_events
from audit.storage.models import (
    AUDIT_STATUSES,
    DECISIONS,
    ApiToken,
    Audit,
    FindingRow,
    Result,
    Review,
    new_id,
    utcnow,
)
from audit.storage.reviews import (
    MSG_OWN_AUDIT,
    mark_reports_stale,
    submitted_by_reviewer,
)


class AuditNotFound(LookupError):
    """No audit with this id (in this project)."""


class SelfReview(PermissionError):
    """The reviewer (this token, or another token of the same person) submitted the audit."""


class IdempotencyConflict(ValueError):
    """An idempotency key was reused with a different spec (``audit_id`` holds the key)."""

    def __init__(self, message: str, *, audit_id: str) -> None:
        super().__init__(message)
        self.audit_id = audit_id


# ---------------------------------------------------------------- create / read


MSG_KEY_CONFLICT = (
    "Idempotency-Key {key!r} was already used for audit {id} with a different spec; "
    "use a new key for a new request"
)
# Core statements: no ORM identity map or unit of work per row (the API inserts in batches).
_AUDITS = cast(Table, Audit.__table__)
_INSERT = insert(_AUDITS)


def new_audit_row(
    *,
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
    submitted_by: str | None = None,
) -> dict[str, Any]:
    """Every column of a new audit row, for :func:`insert_audits` / :func:`insert_keyed_audit`."""
    if status not in AUDIT_STATUSES:
        raise ValueError(f"status: must be one of {', '.join(AUDIT_STATUSES)}, got {status!r}")
    return {
        "id": new_id(),
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
        "submitted_by": submitted_by,
        "idempotency_key": idempotency_key,
        "progress": 0.0,
        "attempts": 0,
        "cancel_requested": False,
        "created_at": utcnow(),
    }


def submitted_event(row: dict[str, Any], *, actor: str | None = None) -> dict[str, Any]:
    """The "audit.submitted" log entry of a new audit row (for :func:`append_events`)."""
    return {
        "action": "audit.submitted",
        "actor": actor or row.get("submitted_by") or "system",
        "subject": f"audit/{row['id']}",
        "project": row["project"],
        "audit_id": row["id"],
        "detail": {"name": row["name"], "spec_sha256": row["spec_sha256"]},
    }


def insert_audits(*, session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert audits without an Idempotency-Key: one multi-row ``INSERT`` (rows from
    :func:`new_audit_row`)."""
    if rows:
        session.execute(_INSERT, rows)


@dataclass(frozen=True)
class KeyedAudit:
    """The audit holding an Idempotency-Key: its id and status, and whether this call made it."""

    id: str
    status: str
    inserted: bool


def insert_keyed_audit(*, session: Session, row: dict[str, Any]) -> KeyedAudit:
    """Insert ``row`` unless its project already has an audit with its Idempotency-Key.

    ``INSERT ... ON CONFLICT DO NOTHING``: a concurrent twin waits for the first
    transaction, then finds its row. Raises :class:`IdempotencyConflict` when the key
    holds another spec.
    """
    inserted = session.execute(
        insert_ignore(session, Audit, index_elements=["project", "idempotency_key"])
        .values(row)
        .returning(Audit.id)
    ).first()
    existing = session.execute(
        select(Audit.id, Audit.status, Audit.spec_sha256).where(
            Audit.project == row["project"], Audit.idempotency_key == row["idempotency_key"]
        )
    ).one()
    if existing.spec_sha256 != row["spec_sha256"]:
        raise IdempotencyConflict(
            MSG_KEY_CONFLICT.format(key=row["idempotency_key"], id=existing.id),
            audit_id=existing.id,
        )
    return KeyedAudit(existing.id, existing.status, inserted is not None)


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
    submitted_by: str | None = None,
    actor: str | None = None,
) -> Audit:
    """Insert an audit, or return the existing one when ``idempotency_key`` repeats.

    The same statements as the API's group commit (:func:`new_audit_row`,
    :func:`insert_audits`, :func:`insert_keyed_audit`). A repeated key with a
    different ``spec_sha256`` raises :class:`IdempotencyConflict`. The project row
    is created on first use, unless the caller knows it exists
    (``project_exists=True``); the foreign key still refuses a missing one.

    A new audit appends "audit.submitted" to the event log, by ``actor``
    (default: ``submitted_by``, else "system"): call it last in the transaction.
    """
    if not project_exists:
        ensure_project(session=session, name=project)
    row = new_audit_row(
        project=project,
        spec=spec,
        name=name,
        domain=domain,
        spec_sha256=spec_sha256,
        idempotency_key=idempotency_key,
        status=status,
        dataset_sha256=dataset_sha256,
        model_sha256=model_sha256,
        schedule_id=schedule_id,
        token_id=token_id,
        submitted_by=submitted_by,
    )
    if row["idempotency_key"] is None:
        insert_audits(session=session, rows=[row])
        audit_id, inserted = row["id"], True
    else:
        keyed = insert_keyed_audit(session=session, row=row)
        audit_id, inserted = keyed.id, keyed.inserted
    if inserted:
        append_events(session=session, entries=[submitted_event(row, actor=actor)])
    audit = session.get(Audit, audit_id, populate_existing=True)
    assert audit is not None
    return audit


def get_audit(*, session: Session, project: str, audit_id: str) -> Audit | None:
    """The audit with this id in this project, or None (also for other projects' ids)."""
    return session.scalars(
        select(Audit).where(Audit.id == audit_id, Audit.project == project)
    ).one_or_none()


def load_audit(*, session: Session, audit_id: str) -> Audit | None:
    """The audit by id across projects: for workers and the scheduler, never the API."""
    return session.get(Audit, audit_id, populate_existing=True)


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
    """Record a reviewer's decision on a project's finished audit.

    Raises :class:`SelfReview` when ``token_id``, or another token of the same
    person, submitted it (separation of duties); the stored reports are dropped
    so they are rendered again with this review; logged as "audit.reviewed".
    """
    if decision not in DECISIONS:
        raise ValueError(f"decision: must be one of {', '.join(DECISIONS)}, got {decision!r}")
    audit = get_audit(session=session, project=project, audit_id=audit_id)
    if audit is None:
        raise AuditNotFound(f"audit {audit_id!r} not found")
    if audit.status != "succeeded":
        raise ValueError(
            f"audit {audit_id}: is {audit.status}; only succeeded audits can be reviewed"
        )
    if token_id is not None:
        name = session.scalar(select(ApiToken.name).where(ApiToken.id == token_id))
        if submitted_by_reviewer(session, audit, token_id=token_id, name=name):
            raise SelfReview(MSG_OWN_AUDIT.format(person=reviewer or name, id=audit_id))
    mark_reports_stale(session, audit_id)
    review = Review(
        audit_id=audit_id, decision=decision, comment=comment, token_id=token_id, reviewer=reviewer
    )
    session.add(review)
    session.flush()
    append_event(
        session=session,
        action="audit.reviewed",
        actor=reviewer or "unknown",
        subject=f"audit/{audit_id}",
        project=project,
        audit_id=audit_id,
        detail={"decision": decision, "review_id": review.id},
    )
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
