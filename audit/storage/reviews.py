"""Reviews as people see them: the list of sign-offs, the review state, separation of duties.

The review state of an audit follows its latest review (latest decision wins):

- ``awaiting review``: no review yet (or the audit has not succeeded);
- ``approved``: the latest review approves;
- ``rejected``: the latest review rejects.

A person (a token's ``--name``; an unnamed token is a person of its own) may not
review an audit they submitted, through any of their tokens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from audit.storage.accounts import same_person
from audit.storage.models import ApiToken, Audit, Report, Review

AWAITING, APPROVED, REJECTED = "awaiting review", "approved", "rejected"
REVIEW_STATES = (AWAITING, APPROVED, REJECTED)
MSG_OWN_AUDIT = (
    "{person} submitted audit {id} and may not review it: separation of duties needs "
    "another person's token"
)


def list_reviews(session: Session, audit_id: str) -> list[dict[str, Any]]:
    """An audit's reviews, oldest first: ``{decision, reviewer, comment, created_at}`` each.

    For the report renderer and the API (the caller checks the tenant first).
    """
    rows = session.execute(
        select(Review.decision, Review.reviewer, Review.comment, Review.created_at)
        .where(Review.audit_id == audit_id)
        .order_by(Review.created_at, Review.id)
    ).all()
    return [
        {
            "decision": r.decision,
            "reviewer": r.reviewer,
            "comment": r.comment,
            "created_at": r.created_at,
        }
        for r in rows
    ]


def review_state(reviews: list[dict[str, Any]]) -> str:
    """``awaiting review``, ``approved`` or ``rejected``: the latest decision wins."""
    if not reviews:
        return AWAITING
    return APPROVED if reviews[-1]["decision"] == "approve" else REJECTED


def review_states(session: Session, audit_ids: list[str]) -> dict[str, str]:
    """The review state of several audits in one query (listings)."""
    latest: dict[str, tuple[datetime, int, str]] = {}
    if audit_ids:
        rows = session.execute(
            select(Review.audit_id, Review.created_at, Review.id, Review.decision).where(
                Review.audit_id.in_(audit_ids)
            )
        )
        for r in rows:
            if r.audit_id not in latest or (r.created_at, r.id) > latest[r.audit_id][:2]:
                latest[r.audit_id] = (r.created_at, r.id, r.decision)
    return {a: review_state([{"decision": latest[a][2]}] if a in latest else []) for a in audit_ids}


def submitted_by_reviewer(
    session: Session, audit: Audit, *, token_id: int, name: str | None
) -> bool:
    """True when the reviewing token, or another token of the same person, submitted ``audit``."""
    if audit.token_id is not None and audit.token_id == token_id:
        return True
    submitter = audit.submitted_by
    if submitter is None and audit.token_id is not None:
        submitter = session.scalar(select(ApiToken.name).where(ApiToken.id == audit.token_id))
    return same_person(submitter, name)


def mark_reports_stale(session: Session, audit_id: str) -> int:
    """Drop an audit's stored reports so the next read renders them again (with the reviews).

    Files the audit produced (``file:<name>``) are kept. Returns the number of reports dropped.
    """
    from audit.storage.reports import ARTIFACT_PREFIX

    result = session.execute(
        delete(Report).where(
            Report.audit_id == audit_id,
            ~Report.format.startswith(ARTIFACT_PREFIX, autoescape=True),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
