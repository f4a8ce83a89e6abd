"""Reviewer sign-off on succeeded audits: ``POST/GET /v1/audits/{id}/reviews``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.api.body import json_body
from audit.api.deps import ReaderToken, ReviewerToken, SessionDep, TokenInfo
from audit.api.errors import ApiError, not_found
from audit.api.logging import bind
from audit.api.schemas import (
    ErrorPublic,
    ReviewCreate,
    ReviewPublic,
    ReviewsPublic,
    json_request_body,
)
from audit.storage.audits import SelfReview
from audit.storage.models import Audit, plausible_id
from audit.storage.repo import add_review, get_audit, list_reviews

router = APIRouter(prefix="/v1/audits", tags=["reviews"])
MSG_NOT_REVIEWABLE = "audit {id} is {status}; only succeeded audits can be reviewed"


@router.post(
    "/{audit_id}/reviews",
    status_code=201,
    response_model=ReviewPublic,
    summary="Approve or reject a succeeded audit (reviewer or admin)",
    openapi_extra=json_request_body("ReviewCreate"),
    responses={
        403: {
            "model": ErrorPublic,
            "description": "not a reviewer, or the same person submitted the audit",
        },
        409: {"model": ErrorPublic, "description": "the audit has not succeeded"},
    },
)
async def create_review(
    audit_id: str, request: Request, token: ReviewerToken, session: SessionDep
) -> ReviewPublic:
    review = await json_body(request, ReviewCreate)
    return await run_in_threadpool(_review, session, token, audit_id, review)


def _audit(session: Session, project: str, audit_id: str) -> Audit:
    if not plausible_id(audit_id):
        raise not_found("audit", audit_id[:100])
    bind(audit_id=audit_id)
    audit = get_audit(session=session, project=project, audit_id=audit_id)
    if audit is None:
        raise not_found("audit", audit_id)
    return audit


def _review(
    session: Session, token: TokenInfo, audit_id: str, review: ReviewCreate
) -> ReviewPublic:
    audit = _audit(session, token.project, audit_id)
    if audit.status != "succeeded":
        raise ApiError(409, MSG_NOT_REVIEWABLE.format(id=audit_id, status=audit.status))
    try:  # refused for the submitter, through any of their tokens; drops stale reports
        row = add_review(
            session=session,
            project=token.project,
            audit_id=audit_id,
            decision=review.decision,
            comment=review.comment,
            token_id=token.id,
            reviewer=token.actor,
        )
    except SelfReview as exc:
        raise ApiError(403, str(exc)) from None
    session.commit()
    return ReviewPublic.model_validate(row)


@router.get("/{audit_id}/reviews", response_model=ReviewsPublic, summary="An audit's reviews")
def read_reviews(audit_id: str, token: ReaderToken, session: SessionDep) -> ReviewsPublic:
    _audit(session, token.project, audit_id)
    rows = list_reviews(session=session, project=token.project, audit_id=audit_id)
    return ReviewsPublic(data=[ReviewPublic.model_validate(r) for r in rows], count=len(rows))
