"""Datasets: streamed upload (``POST /v1/datasets``) and lookup (``GET /v1/datasets/{id}``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from audit.api.deps import ReaderToken, SessionDep, SettingsDep, SubmitterToken
from audit.api.schemas import DatasetPublic, ErrorPublic
from audit.api.stored import file_upload_body, find_or_404, record_stored
from audit.api.uploads import receive_upload
from audit.storage.repo import create_dataset, get_dataset

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
    return await record_stored(
        session,
        stored.path,
        lambda: create_dataset(
            session=session,
            project=token.project,
            sha256=stored.sha256,
            path=str(stored.path),
            rows=stored.sniffed.rows,
            columns=stored.sniffed.columns,
            column_levels=stored.sniffed.levels,
            size_bytes=stored.size_bytes,
            filename=stored.filename,
            dataset_id=stored.dataset_id,
        ),
        DatasetPublic.model_validate,
    )


@router.get("/{dataset_id}", response_model=DatasetPublic, summary="A dataset's hash and shape")
def read_dataset(dataset_id: str, token: ReaderToken, session: SessionDep) -> DatasetPublic:
    row = find_or_404(
        "dataset",
        dataset_id,
        lambda i: get_dataset(session=session, project=token.project, dataset_id=i),
    )
    return DatasetPublic.model_validate(row)
