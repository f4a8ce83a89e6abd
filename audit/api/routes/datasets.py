"""Datasets: streamed upload (``POST /v1/datasets``), direct upload to the object store
(``POST /v1/datasets/uploads``, then ``.../{id}/complete``), lookup (``GET /v1/datasets/{id}``),
listing (``GET /v1/datasets``) and deletion (``DELETE /v1/datasets/{id}``,
:mod:`audit.api.erasure`).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.api import erasure
from audit.api.body import json_body
from audit.api.deps import DeleterToken, ReaderToken, SessionDep, SettingsDep, SubmitterToken
from audit.api.direct_uploads import complete_upload, start_upload
from audit.api.schemas import (
    DatasetItem,
    DatasetPublic,
    DatasetsPublic,
    ErrorPublic,
    UploadComplete,
    UploadCreate,
    UploadPost,
    UploadPublic,
    json_request_body,
)
from audit.api.stored import file_upload_body, record_stored
from audit.api.uploads import StoredUpload, receive_upload
from audit.queue import publish_conversion
from audit.settings import Settings
from audit.storage.inventory import DATASET
from audit.storage.listing import MAX_OFFSET, MAX_PAGE
from audit.storage.objects import get_store
from audit.storage.repo import create_dataset, get_dataset

log = logging.getLogger("biasaudit.api")
COPIED = (".csv", ".csv.gz")  # uploads that get a columnar copy (not .zip: not streamed)
router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

_UPLOAD_BODY = file_upload_body("CSV (UTF-8; may be .gz or a .zip of one CSV) or Parquet")


@router.post(
    "",
    status_code=201,
    response_model=DatasetPublic,
    summary="Upload a dataset (multipart field 'file')",
    openapi_extra=_UPLOAD_BODY,
    responses={
        413: {"model": ErrorPublic, "description": "too large, too many rows, or a bomb"},
        415: {"model": ErrorPublic, "description": "not CSV or Parquet"},
        422: {"model": ErrorPublic, "description": "no 'file' part, or unreadable CSV"},
    },
)
async def upload_dataset(
    request: Request, token: SubmitterToken, session: SessionDep, settings: SettingsDep
) -> DatasetPublic:
    # Release the connection while the body streams in: uploads can be slow.
    await run_in_threadpool(session.commit)
    stored = await receive_upload(request, settings=settings, project=token.project)
    return await _record(session, settings, token.project, stored)


async def _record(
    session: Session, settings: Settings, project: str, stored: StoredUpload
) -> DatasetPublic:
    """Record a checked, stored upload; remove the object if recording fails; then ask a
    worker for the columnar copy of a CSV file (:mod:`workers.columnar`)."""
    recorded = await record_stored(
        session,
        lambda: get_store(settings).delete(stored.key),
        lambda: create_dataset(
            session=session,
            project=project,
            sha256=stored.sha256,
            path=stored.address,
            rows=stored.sniffed.rows,
            columns=stored.sniffed.columns,
            column_levels=stored.sniffed.levels,
            size_bytes=stored.size_bytes,
            filename=stored.filename,
            dataset_id=stored.dataset_id,
            etag=stored.etag,
        ),
        DatasetPublic.model_validate,
    )
    if stored.sniffed.extension in COPIED:
        await run_in_threadpool(_ask_for_copy, project, recorded.id)
    return recorded


def _ask_for_copy(project: str, dataset_id: str) -> None:
    """Queue the columnar copy; a broker that is down costs only the copy (audits read
    the CSV file): the upload has succeeded."""
    try:
        publish_conversion(project, dataset_id)
    except Exception as exc:  # noqa: BLE001 - an optimisation, never a new way to fail
        log.warning("dataset %s: columnar copy not queued: %s", dataset_id, type(exc).__name__)


@router.post(
    "/uploads",
    status_code=201,
    response_model=UploadPublic,
    summary="Start a direct upload to the object store (presigned PUT URL)",
    openapi_extra=json_request_body("UploadCreate"),
    responses={
        409: {"model": ErrorPublic, "description": "no object store: use POST /v1/datasets"},
        413: {"model": ErrorPublic, "description": "size_bytes above the upload limit"},
    },
)
async def start_dataset_upload(
    request: Request, token: SubmitterToken, settings: SettingsDep
) -> UploadPublic:
    body = await json_body(request, UploadCreate)
    started = await run_in_threadpool(
        partial(start_upload, settings=settings, project=token.project, size_bytes=body.size_bytes)
    )
    return UploadPublic(
        id=started.upload_id,
        url=started.url,
        expires_at=started.expires_at,
        max_bytes=settings.max_upload_bytes,
        complete_url=f"/v1/datasets/uploads/{started.upload_id}/complete",
        post=None if started.post is None else UploadPost.model_validate(started.post),
    )


@router.post(
    "/uploads/{upload_id}/complete",
    status_code=201,
    response_model=DatasetPublic,
    summary="Verify a direct upload (sha256, size, type) and register the dataset",
    openapi_extra=json_request_body("UploadComplete"),
    responses={
        404: {"model": ErrorPublic, "description": "no uploaded object for this id"},
        409: {"model": ErrorPublic, "description": "no object store, or the object changed"},
        413: {"model": ErrorPublic, "description": "too large, too many rows, or a bomb"},
        415: {"model": ErrorPublic, "description": "not CSV or Parquet"},
        422: {"model": ErrorPublic, "description": "sha256 differs, or unreadable CSV"},
    },
)
async def complete_dataset_upload(
    upload_id: str,
    request: Request,
    token: SubmitterToken,
    session: SessionDep,
    settings: SettingsDep,
) -> DatasetPublic:
    body = await json_body(request, UploadComplete)
    await run_in_threadpool(session.commit)  # no connection held while the object is read
    work = partial(
        complete_upload,
        settings=settings,
        project=token.project,
        upload_id=upload_id,
        sha256=body.sha256,
        filename=body.filename,
    )
    stored = await run_in_threadpool(work)
    return await _record(session, settings, token.project, stored)


@router.get("", response_model=DatasetsPublic, summary="List the project's datasets, newest first")
def list_datasets(
    token: ReaderToken,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    deleted: Annotated[bool, Query(description="true: only the deleted ones")] = False,
) -> DatasetsPublic:
    items, total = erasure.page(
        session, token.project, DATASET, limit=limit, offset=offset, deleted=deleted
    )
    data = [DatasetItem.model_validate(r).model_copy(update={"usage": u}) for r, u in items]
    return DatasetsPublic(data=data, count=total, limit=limit, offset=offset)


@router.get(
    "/{dataset_id}",
    response_model=DatasetPublic,
    summary="A dataset's hash and shape",
    responses=erasure.responses(DATASET, delete=False),
)
def read_dataset(dataset_id: str, token: ReaderToken, session: SessionDep) -> DatasetPublic:
    row = erasure.find_live(
        session,
        token.project,
        DATASET,
        dataset_id,
        lambda i: get_dataset(session=session, project=token.project, dataset_id=i),
    )
    return DatasetPublic.model_validate(row)


@router.delete(
    "/{dataset_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a dataset: its file, columnar copy and copies everywhere; sha256 stays",
    responses=erasure.responses(DATASET, delete=True),
)
def delete_dataset(
    dataset_id: str, token: DeleterToken, session: SessionDep, settings: SettingsDep
) -> Response:
    erasure.delete(session, settings, token, DATASET, dataset_id)
    return Response(status_code=204)
