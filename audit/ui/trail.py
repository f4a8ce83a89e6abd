"""The dashboard's seams to the API's rules and to the audit trail.

Each page that acts or needs trail data goes through one function here, so
the pages follow the JSON API's rules (the same role check and review code
path) and pick up the event log and the significance test of comparisons
when those land, in one place:

- :func:`submit_review` runs the API's review path (role, tenancy, status,
  and any separation-of-duties rule the API enforces);
- :func:`api_report` answers with the API's own report route (stored HTML,
  PDF with its size bound, reviews);
- :func:`list_events` returns the event log page, or None while the
  service has no event log ("not available" on the page);
- :func:`compare_significance` returns the comparison document of
  ``GET /v1/audits/{a}/compare/{b}`` (a test per shared metric), or None while
  there is none: the page then shows the values side by side without a test.

The event log (``audit.storage.events``: ``list_events``, ``event_dict``) and the
comparison (``audit.compare``: ``compare_results``) are used when this build
has them; :func:`trail_module` is the one place that looks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from audit.api.deps import TokenInfo, authorize
from audit.api.errors import ApiError
from audit.api.schemas import ReviewCreate
from audit.ui.security import UiError

REVIEW_ROLES = ("reviewer", "admin")
# where the API's report route lives (its own module once reports have more formats)
REPORT_MODULES = ("audit.api.routes.reports", "audit.api.routes.audits")
REPORT_FORMATS = ("html", "pdf")
EVENTS_MODULE = "audit.storage.events"
COMPARE_MODULE = "audit.compare"


def trail_module(name: str, *functions: str) -> Any | None:
    """The trail module ``name`` when this build has it with ``functions``, else None."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the module exists but one of its imports is missing
            raise
        return None
    return module if all(callable(getattr(module, f, None)) for f in functions) else None


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


def api_report(
    *, request: Request, session: Session, token: TokenInfo, audit_id: str, format: str
) -> Response:
    """The answer of ``GET /v1/audits/{id}/report?format=`` for ``token`` (errors as pages):
    the dashboard serves exactly what the API serves (rendering, bounds, sign-off)."""
    endpoint = next(
        module.read_report
        for module in (trail_module(name, "read_report") for name in REPORT_MODULES)
        if module is not None
    )
    try:
        response: Response = endpoint(
            audit_id=audit_id, token=token, session=session, request=request, format=format
        )
    except ApiError as exc:
        raise UiError(exc.status_code, exc.detail) from None
    return response


@dataclass(frozen=True)
class EventsPage:
    """One page of the append-only event log, newest first."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


def list_events(
    *, session: Session, project: str, audit_id: str | None, limit: int, offset: int
) -> EventsPage | None:
    """The project's event log entries, newest first (``seq, at, actor, action, subject,
    audit_id, sha256, prev_sha256``), or None: this build has no event log."""
    log = trail_module(EVENTS_MODULE, "list_events", "event_dict")
    if log is None:
        return None
    rows, total = log.list_events(
        session=session, project=project, audit_id=audit_id, limit=limit, offset=offset
    )
    return EventsPage(entries=[dict(log.event_dict(r)) for r in rows], total=int(total))


def compare_significance(
    document_a: dict[str, Any], document_b: dict[str, Any]
) -> dict[str, Any] | None:
    """The comparison with a significance test per shared metric (``metrics`` rows with
    ``probe, attribute, group, metric, p_value, significant``), or None: not available."""
    compare = trail_module(COMPARE_MODULE, "compare_results")
    if compare is None:
        return None
    return dict(compare.compare_results(document_a, document_b))
