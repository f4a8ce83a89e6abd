"""Models: upload (``POST /v1/models``), lookup (``GET /v1/models/{id}``), listing
(``GET /v1/models``) and deletion (``DELETE /v1/models/{id}``, :mod:`audit.api.erasure`).

The checks live in :mod:`audit.api.model_upload`; a spec then names the model
as ``model: {kind: sklearn, id: ID}`` (or ``kind: huggingface``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from audit.api import erasure
from audit.api.deps import DeleterToken, ReaderToken, SessionDep, SettingsDep, SubmitterToken
from audit.api.model_upload import discard_model, receive_model
from audit.api.schemas import ErrorPublic, ModelItem, ModelPublic, ModelsPublic
from audit.api.stored import file_upload_body, record_stored
from audit.storage.inventory import MODEL
from audit.storage.listing import MAX_OFFSET, MAX_PAGE
from audit.storage.repo import create_model, get_model

router = APIRouter(prefix="/v1/models", tags=["models"])

_UPLOAD_BODY = file_upload_body(
    "a .skops file, or a Hugging Face model folder as .zip, .tar or .tar.gz "
    "(safetensors weights, no code)"
)


@router.post(
    "",
    status_code=201,
    response_model=ModelPublic,
    summary="Upload a model (multipart field 'file': .skops, or a zipped/tarred HF folder)",
    openapi_extra=_UPLOAD_BODY,
    responses={
        413: {"model": ErrorPublic, "description": "too large, too many entries, or a bomb"},
        415: {"model": ErrorPublic, "description": "a pickle, or not a .skops file or archive"},
        422: {
            "model": ErrorPublic,
            "description": "no 'file' part; types off the allowlist; unsafe archive entry "
            "(path escape, symlink, .py); remote code; no config.json or weights",
        },
    },
)
async def upload_model(
    request: Request, token: SubmitterToken, session: SessionDep, settings: SettingsDep
) -> ModelPublic:
    await run_in_threadpool(session.commit)  # release the connection while the body streams
    stored = await receive_model(request, settings=settings, project=token.project)
    return await record_stored(
        session,
        lambda: discard_model(settings, stored.key),
        lambda: create_model(
            session=session,
            project=token.project,
            kind=stored.kind,
            sha256=stored.sha256,
            path=stored.address,
            model_id=stored.model_id,
            filename=stored.filename,
            size_bytes=stored.size_bytes,
            files=stored.files,
        ),
        ModelPublic.model_validate,
    )


@router.get("", response_model=ModelsPublic, summary="List the project's models, newest first")
def list_models(
    token: ReaderToken,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    deleted: Annotated[bool, Query(description="true: only the deleted ones")] = False,
) -> ModelsPublic:
    items, total = erasure.page(
        session, token.project, MODEL, limit=limit, offset=offset, deleted=deleted
    )
    data = [ModelItem.model_validate(r).model_copy(update={"usage": u}) for r, u in items]
    return ModelsPublic(data=data, count=total, limit=limit, offset=offset)


@router.get(
    "/{model_id}",
    response_model=ModelPublic,
    summary="A model's kind and fingerprint",
    responses=erasure.responses(MODEL, delete=False),
)
def read_model(model_id: str, token: ReaderToken, session: SessionDep) -> ModelPublic:
    row = erasure.find_live(
        session,
        token.project,
        MODEL,
        model_id,
        lambda i: get_model(session=session, project=token.project, model_id=i),
    )
    return ModelPublic.model_validate(row)


@router.delete(
    "/{model_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a model: its file or folder and copies everywhere; its fingerprint stays",
    responses=erasure.responses(MODEL, delete=True),
)
def delete_model(
    model_id: str, token: DeleterToken, session: SessionDep, settings: SettingsDep
) -> Response:
    erasure.delete(session, settings, token, MODEL, model_id)
    return Response(status_code=204)
