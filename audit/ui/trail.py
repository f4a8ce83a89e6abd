"""The dashboard's seams to the API's rules and to the audit trail.

Each page that acts or needs trail data goes through one function here, so
the pages follow the JSON API's rules (the same role check and review code
path) and pick up the event log and the significance test of comparisons
when those land, in one place:

- :func:`submit_review` runs the API's review path (role, tenancy, status,
  and any separation-of-duties rule the API enforces);
- :func:`list_events` returns the event log page, or None while the
  service has no event log ("not available" on the page);
- :func:`compare_significance` returns the API's comparison document
  (``GET /v1/audits/{a}/compare/{b}``), or None while there is none: the
  page then shows the values side by side without a significance test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from audit.api.deps import TokenInfo, authorize
from audit.api.errors import ApiError
from audit.api.schemas import ReviewCreate
from audit.ui.security import UiError

REVIEW_ROLES = ("reviewer", "admin")


def submit_review(
    *, session: Session, token: TokenInfo, audit_id: str, decision: str, comment: str
) -> None:
    """Record a review exactly as ``POST /v1/audits/{id}/reviews`` does (errors as pages)."""
    from audit.api.routes.reviews import _review

    refusal = authorize(token.role, REVIEW_ROLES, action="review audits")
    if refusal is not None:
        raise UiError(refusal.status_code, refusal.detail)
    try:
        body = ReviewCreate(decision=decision, comment=comment.strip() or None)  # type: ignore[arg-type]
    except ValidationError:
        raise UiError(422, "decision: choose approve or reject") from None
    try:
        _review(session, token, audit_id, body)
    except ApiError as exc:
        raise UiError(exc.status_code, exc.detail) from None


@dataclass(frozen=True)
class EventsPage:
    """One page of the append-only event log, newest first."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


def list_events(
    *, session: Session, project: str, audit_id: str | None, limit: int, offset: int
) -> EventsPage | None:
    """The project's event log entries (``seq, at, actor, action, subject, sha256,
    prev_sha256``), or None: this build has no event log yet."""
    del session, project, audit_id, limit, offset
    return None


def compare_significance(
    *, session: Session, project: str, audit_a: str, audit_b: str
) -> dict[str, Any] | None:
    """The comparison with significance per shared metric, or None: not available yet."""
    del session, project, audit_a, audit_b
    return None
