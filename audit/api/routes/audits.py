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
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.api.deps import JsonBody, ReaderToken, SessionDep, SettingsDep, SubmitterToken
from audit.api.errors import ApiError, not_found
from audit.api.logging import bind
from audit.api.schemas import (
    AuditPublic,
    AuditQueued,
    AuditsPublic,
    AuditStatus,
    ErrorPublic,
    Verdict,
)
from audit.api.submission import prepare_spec
from audit.queue import publish, queue_for
from audit.storage.audits import MAX_PAGE
from audit.storage.models import Audit
from audit.storage.repo import (
    IdempotencyConflict,
    create_audit,
    get_audit,
    get_results,
    list_audits,
    request_cancel,
)

log = logging.getLogger("audit.api.audits")
router = APIRouter(prefix="/v1/audits", tags=["audits"])

SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AuditCreate"}}},
    }
}
MSG_KEY_CONFLICT = (
    "Idempotency-Key {key!r} was already used for audit {id} with a different spec; "
    "use a new key for a new request"
)
MSG_NOT_SUCCEEDED = "audit {id} is {status}: results exist once it has succeeded"
MSG_FINISHED = "audit {id} already {status}; only queued or running audits can be cancelled"


def _load(session: Session, project: str, audit_id: str) -> Audit:
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
    summary="Submit an audit (spec as JSON body)",
    openapi_extra=SPEC_BODY,
    responses={
        404: {"model": ErrorPublic, "description": "dataset.id not found in this project"},
        409: {"model": ErrorPublic, "description": "Idempotency-Key reused with another spec"},
        422: {"model": ErrorPublic, "description": "invalid spec; 'field' is the path"},
        503: {"model": ErrorPublic, "description": "database unavailable; nothing recorded"},
    },
)
def submit_audit(
    token: SubmitterToken,
    body: JsonBody,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
) -> AuditQueued:
    prepared = prepare_spec(body, session=session, project=token.project, settings=settings)
    if idempotency_key is not None:
        existing = session.scalars(
            select(Audit).where(
                Audit.project == token.project, Audit.idempotency_key == idempotency_key
            )
        ).one_or_none()
        if existing is not None:
            if existing.spec_sha256 != prepared.spec_sha256:
                raise ApiError(
                    409,
                    MSG_KEY_CONFLICT.format(key=idempotency_key, id=existing.id),
                    field="Idempotency-Key",
                )
            bind(audit_id=existing.id)
            response.headers["Location"] = f"/v1/audits/{existing.id}"
            return AuditQueued(id=existing.id, status=existing.status)  # type: ignore[arg-type]
    try:
        audit = create_audit(
            session=session,
            project=token.project,
            spec=prepared.stored,
            name=prepared.spec.name,
            domain=prepared.spec.domain,
            spec_sha256=prepared.spec_sha256,
            idempotency_key=idempotency_key,
            dataset_sha256=prepared.dataset_sha256,
            token_id=token.id,
            project_exists=True,  # the token row references its project
        )
    except IdempotencyConflict as exc:
        raise ApiError(409, str(exc), field="Idempotency-Key") from None
    audit_id, status = audit.id, audit.status
    session.commit()  # the row exists before any message names it
    bind(audit_id=audit_id)
    queue = queue_for(prepared.stored)
    try:
        publish(audit_id, queue=queue, broker_url=settings.broker_url)
        log.info("audit queued", extra={"queue": queue})
    except Exception as exc:  # broker down: the reconciler publishes queued rows later
        log.warning(
            "publish failed; the audit stays queued for the reconciler",
            extra={"queue": queue, "error": type(exc).__name__},
        )
    response.headers["Location"] = f"/v1/audits/{audit_id}"
    return AuditQueued(id=audit_id, status=status)  # type: ignore[arg-type]


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
    offset: Annotated[int, Query(ge=0)] = 0,
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
    )
    return AuditsPublic(
        data=[AuditPublic.model_validate(r) for r in rows], count=total, limit=limit, offset=offset
    )


@router.get("/{audit_id}", response_model=AuditPublic, summary="An audit's status and progress")
def read_audit(audit_id: str, token: ReaderToken, session: SessionDep) -> AuditPublic:
    return AuditPublic.model_validate(_load(session, token.project, audit_id))


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


@router.get(
    "/{audit_id}/report",
    summary="The audit report: HTML, or a PDF summary with ?format=pdf",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}, "application/pdf": {}}},
        409: {"model": ErrorPublic, "description": "the audit has not succeeded"},
    },
)
def read_report(
    audit_id: str,
    token: ReaderToken,
    session: SessionDep,
    format: Literal["html", "pdf"] = "html",
) -> Response:
    results = _results(session, token.project, audit_id)
    if format == "pdf":
        from audit.pdf import render_pdf

        return Response(
            render_pdf(results),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="audit-{audit_id}.pdf"'},
        )
    from audit.report import render_html

    return HTMLResponse(render_html(results))


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
    audit = request_cancel(session=session, project=token.project, audit_id=audit_id)
    if audit is None:
        raise not_found("audit", audit_id)
    if audit.status in ("succeeded", "failed"):
        raise ApiError(409, MSG_FINISHED.format(id=audit_id, status=audit.status))
    session.commit()
    if audit.status == "running":
        response.status_code = 202
    log.info("cancel requested", extra={"status": audit.status})
    return AuditPublic.model_validate(audit)
