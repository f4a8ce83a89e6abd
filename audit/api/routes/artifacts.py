"""Files an audit produced, beside its results: ``GET /v1/audits/{id}/artifacts[/{name}]``.

lda-search's best alternative (``lda-best-<attribute>.skops``, named in
results.json ``summary.best_model_file``) is stored with the results by the worker
(:func:`audit.storage.reports.store_artifact`) and streamed from storage here.
Tenant-scoped like every audit route (another project's audit is a 404), and a
name is only ever looked up among the files that audit stored: a name that is not
a bare file name is a 422, any other unknown name a 404 listing what there is.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from audit.api.deps import ReaderToken, SessionDep
from audit.api.errors import ApiError
from audit.api.routes.audits import MSG_NOT_SUCCEEDED, _load
from audit.api.schemas import ArtifactPublic, ArtifactsPublic, ErrorPublic
from audit.settings import get_settings
from audit.storage.reports import (
    MSG_ARTIFACT_NAME,
    artifact_name,
    get_artifact,
    iter_report,
    list_artifacts,
    valid_artifact_name,
)

router = APIRouter(prefix="/v1/audits", tags=["audits"])
MSG_NO_ARTIFACT = "name: audit {id} produced no file {name!r}; it produced: {names}"


def _succeeded(session: SessionDep, project: str, audit_id: str) -> None:
    audit = _load(session, project, audit_id)
    if audit.status != "succeeded":
        raise ApiError(409, MSG_NOT_SUCCEEDED.format(id=audit_id, status=audit.status))


@router.get(
    "/{audit_id}/artifacts",
    summary="The files the audit produced (e.g. lda-search's best alternative model)",
    response_model=ArtifactsPublic,
    responses={409: {"model": ErrorPublic, "description": "the audit has not succeeded"}},
)
def list_audit_artifacts(audit_id: str, token: ReaderToken, session: SessionDep) -> ArtifactsPublic:
    _succeeded(session, token.project, audit_id)
    stored = list_artifacts(session=session, project=token.project, audit_id=audit_id)
    data = [
        ArtifactPublic(
            name=artifact_name(s),
            size_bytes=s.size_bytes,
            sha256=s.sha256,
            media_type=s.media_type,
            url=f"/v1/audits/{audit_id}/artifacts/{artifact_name(s)}",
        )
        for s in stored
    ]
    return ArtifactsPublic(data=data, count=len(data))


@router.get(
    "/{audit_id}/artifacts/{name}",
    summary="Download one file the audit produced",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        404: {"model": ErrorPublic, "description": "no such audit, or no such file in it"},
        409: {"model": ErrorPublic, "description": "the audit has not succeeded"},
        422: {"model": ErrorPublic, "description": "not a bare file name"},
    },
)
def read_audit_artifact(
    audit_id: str, name: str, token: ReaderToken, session: SessionDep
) -> StreamingResponse:
    """The file as stored (``ETag``: its SHA-256), streamed piece by piece."""
    _succeeded(session, token.project, audit_id)
    if not valid_artifact_name(name):
        raise ApiError(422, MSG_ARTIFACT_NAME.format(name=name[:200]), field="name")
    stored = get_artifact(session=session, project=token.project, audit_id=audit_id, name=name)
    if stored is None:
        names = [
            artifact_name(s)
            for s in list_artifacts(session=session, project=token.project, audit_id=audit_id)
        ]
        message = MSG_NO_ARTIFACT.format(id=audit_id, name=name, names=names or "none")
        raise ApiError(404, message, field="name")
    session.close()  # the stream opens a short session per piece
    headers = {
        "Content-Length": str(stored.size_bytes),
        "ETag": f'"{stored.sha256}"',
        "Content-Disposition": f'attachment; filename="{name}"',
    }
    return StreamingResponse(
        iter_report(stored, url=get_settings().db_url),
        media_type=stored.media_type,
        headers=headers,
    )
