"""Audits: submit, list, read status, results and report, cancel.

A submission is validated, recorded and committed *before* its message is
published, so a message never names a row that does not exist. If the broker
is down the audit stays ``queued`` and the workers' reconciler publishes it
later; the client still gets ``202``. With an ``Idempotency-Key`` a retried
submission returns the first audit (same id), and reusing a key for a
different spec is ``409``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.api.body import media_type, parse_json, read_json_bytes
from audit.api.deps import (
    ReaderToken,
    SessionDep,
    SubmitterToken,
    bad_token,
    bearer_token,
)
from audit.api.errors import ApiError, not_found
from audit.api.group_commit import Submission, SubmitQueue
from audit.api.logging import bind, context
from audit.api.schemas import (
    AuditPublic,
    AuditQueued,
    AuditsPublic,
    AuditStatus,
    ErrorPublic,
    ReviewState,
    ReviewSummary,
    Verdict,
)
from audit.api.submission import parse_submitted
from audit.api.yaml_body import YAML_TYPES, parse_yaml
from audit.storage.accounts import plausible_token
from audit.storage.listing import MAX_OFFSET, MAX_PAGE
from audit.storage.models import Audit, plausible_id
from audit.storage.repo import (
    get_audit,
    get_results,
    list_audits,
    request_cancel,
)
from audit.storage.reviews import list_reviews, review_state, review_states

log = logging.getLogger("audit.api.audits")
router = APIRouter(prefix="/v1/audits", tags=["audits"])

MAX_KEY = 200
# Bodies up to this size are parsed on the event loop at once; larger ones only after
# their token has passed (in the group commit's batch).
EAGER_PARSE_BYTES = 64 * 1024
MSG_KEY_LENGTH = f"Idempotency-Key: must be 1 to {MAX_KEY} characters"
SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"$ref": "#/components/schemas/AuditCreate"}}
            for media in ("application/json", "application/yaml")
        },
    },
    # Read by the route itself (after the token check), so declared here for the schema.
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "a retried submission with the same key returns the first audit",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
        }
    ],
}
MSG_NOT_SUCCEEDED = "audit {id} is {status}: results exist once it has succeeded"
MSG_FINISHED = "audit {id} already {status}; only queued or running audits can be cancelled"


def _load(session: Session, project: str, audit_id: str) -> Audit:
    if not plausible_id(audit_id):  # cannot exist: no query (and no odd bytes sent to it)
        raise not_found("audit", audit_id[:100])
    bind(audit_id=audit_id)
    audit = get_audit(session=session, project=project, audit_id=audit_id)
    if audit is None:
        raise not_found("audit", audit_id)
    return audit


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@router.post(
    "",
    status_code=202,
    response_model=AuditQueued,
    summary="Submit an audit (spec as JSON or YAML body)",
    openapi_extra=SPEC_BODY,
    responses={
        401: {"model": ErrorPublic, "description": "missing, invalid or revoked token"},
        403: {"model": ErrorPublic, "description": "the token's role may not submit"},
        404: {"model": ErrorPublic, "description": "dataset.id or model.id not in this project"},
        409: {"model": ErrorPublic, "description": "Idempotency-Key reused with another spec"},
        413: {"model": ErrorPublic, "description": "body larger than 1 MiB"},
        415: {"model": ErrorPublic, "description": "body is not JSON or YAML"},
        422: {"model": ErrorPublic, "description": "invalid spec; 'field' is the path"},
        503: {"model": ErrorPublic, "description": "database unavailable; nothing recorded"},
    },
)
async def submit_audit(request: Request) -> JSONResponse:
    """Validate on the event loop, then record through the group commit (one transaction
    and one publish per batch of concurrent submissions; see :mod:`audit.api.group_commit`).

    Errors keep their order: token (401), role (403), body, spec and Idempotency-Key
    header (413/415/422), dataset (404), Idempotency-Key reuse (409). A token that
    cannot be one of ours is refused before the body is read.
    """
    token = bearer_token(request)
    if not plausible_token(token):
        raise bad_token()
    raw: Any = None
    spec = None
    error: ApiError | None = None
    key_error: ApiError | None = None
    deferred: bytes | None = None
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_KEY:
        key_error = ApiError(422, MSG_KEY_LENGTH, field="Idempotency-Key")
    is_yaml = media_type(request) in YAML_TYPES
    try:
        body = await read_json_bytes(request, also=YAML_TYPES)
        if is_yaml:  # bounded (audit.api.yaml_body), but slow: off the event loop
            raw = await run_in_threadpool(parse_yaml, body)
            spec = parse_submitted(raw)
        elif len(body) > EAGER_PARSE_BYTES:
            deferred = body  # parsed in the batch, after the token check
        else:
            raw = parse_json(body)
            spec = parse_submitted(raw)
    except ApiError as exc:
        error = exc
    queue: SubmitQueue = request.app.state.submit_queue
    accepted = await queue.submit(
        Submission(
            token=token,
            raw=raw if spec is not None else None,
            spec=spec,
            spec_error=error,
            idempotency_key=idempotency_key,
            body=deferred,
            key_error=key_error,
            request_id=context().get("request_id"),
        )
    )
    bind(project=accepted.project, token_id=accepted.token_id, audit_id=accepted.audit_id)
    if accepted.published:
        log.info("audit queued", extra={"queue": accepted.queue})
    elif accepted.new:
        log.warning(
            "audit not published; it stays queued for the reconciler",
            extra={"queue": accepted.queue},
        )
    return JSONResponse(
        {"id": accepted.audit_id, "status": accepted.status},
        status_code=202,
        headers={"Location": f"/v1/audits/{accepted.audit_id}"},
    )


@router.get("", response_model=AuditsPublic, summary="List audits, newest first")
def list_audits_route(
    token: ReaderToken,
    session: SessionDep,
    status: AuditStatus | None = None,
    verdict: Verdict | None = None,
    model: Annotated[
        str | None, Query(pattern=r"^[0-9a-f]{64}$", description="model sha256")
    ] = None,
    created_after: Annotated[
        datetime | None, Query(description="inclusive; ISO 8601, UTC if no offset")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="exclusive; ISO 8601, UTC if no offset")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    review_state: Annotated[
        ReviewState | None, Query(description="the latest review decides")
    ] = None,
    schedule: Annotated[str | None, Query(max_length=36, description="schedule id")] = None,
) -> AuditsPublic:
    rows, total = list_audits(
        session=session,
        project=token.project,
        status=status,
        verdict=verdict,
        model_sha256=model,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
        limit=limit,
        offset=offset,
        review_state=review_state,
        schedule_id=schedule,
    )
    states = review_states(session, [r.id for r in rows])
    return AuditsPublic(
        data=[
            AuditPublic.model_validate(r).model_copy(update={"review_state": states[r.id]})
            for r in rows
        ],
        count=total,
        limit=limit,
        offset=offset,
    )


@router.get("/{audit_id}", response_model=AuditPublic, summary="An audit's status and progress")
def read_audit(audit_id: str, token: ReaderToken, session: SessionDep) -> AuditPublic:
    return audit_view(session, _load(session, token.project, audit_id))


def audit_view(session: Session, audit: Audit) -> AuditPublic:
    """An audit with its reviews and review state (the caller checked the tenant)."""
    reviews = list_reviews(session, audit.id)
    return AuditPublic.model_validate(audit).model_copy(
        update={
            "reviews": [ReviewSummary.model_validate(r) for r in reviews],
            "review_state": review_state(reviews),
        }
    )


def _results(session: Session, project: str, audit_id: str) -> dict[str, Any]:
    audit = _load(session, project, audit_id)
    if audit.status != "succeeded":
        raise ApiError(409, MSG_NOT_SUCCEEDED.format(id=audit_id, status=audit.status))
    document = get_results(session=session, project=project, audit_id=audit_id)
    if document is None:  # succeeded without a document cannot happen; do not 500 on it
        raise ApiError(409, MSG_NOT_SUCCEEDED.format(id=audit_id, status="missing results"))
    return document


@router.get(
    "/{audit_id}/results",
    summary="The results.json document of a succeeded audit",
    responses={409: {"model": ErrorPublic, "description": "the audit has not succeeded"}},
)
def read_results(audit_id: str, token: ReaderToken, session: SessionDep) -> dict[str, Any]:
    return _results(session, token.project, audit_id)


@router.post(
    "/{audit_id}/cancel",
    response_model=AuditPublic,
    summary="Cancel a queued (at once) or running (at its next batch) audit",
    responses={
        202: {"model": AuditPublic, "description": "running: cancellation requested"},
        409: {"model": ErrorPublic, "description": "the audit already finished"},
    },
)
def cancel_audit(
    audit_id: str, token: SubmitterToken, session: SessionDep, response: Response
) -> AuditPublic:
    bind(audit_id=audit_id)
    audit = None
    if plausible_id(audit_id):
        audit = request_cancel(
            session=session, project=token.project, audit_id=audit_id, actor=token.actor
        )
    if audit is None:
        raise not_found("audit", audit_id)
    if audit.status in ("succeeded", "failed"):
        raise ApiError(409, MSG_FINISHED.format(id=audit_id, status=audit.status))
    session.commit()
    if audit.status == "running":
        response.status_code = 202
    log.info("cancel requested", extra={"status": audit.status})
    return AuditPublic.model_validate(audit)
