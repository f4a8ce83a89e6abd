"""What the upload routes (``/v1/datasets``, ``/v1/models``) share.

Both take one multipart field ``file``, stream it to disk with the request's
database connection released, record a row for it (removing the stored file if
the row cannot be committed, so nothing is left that no row names), and answer
``GET /{id}`` with the caller's project's row or 404 (also for another
project's id: no existence leak).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from audit.api.errors import not_found
from audit.storage.models import plausible_id

Row = TypeVar("Row")
Answer = TypeVar("Answer")


def file_upload_body(description: str) -> dict[str, Any]:
    """The OpenAPI request body of an upload: multipart with one required field ``file``."""
    schema = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": description}},
    }
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


async def record_stored(
    session: Session,
    discard: Callable[[], None],
    create: Callable[[], Row],
    answer: Callable[[Row], Answer],
) -> Answer:
    """``create()`` the row of a stored upload, commit, and ``answer(row)``, on a worker thread
    (the answer reads the committed row through the session).

    If the row cannot be created or committed, ``discard()`` removes what was stored
    (the file or folder, or the object in the store).
    """

    def record() -> Answer:
        try:
            row = create()
            session.commit()
        except BaseException:
            discard()
            raise
        return answer(row)

    return await run_in_threadpool(record)


def find_or_404(what: str, item_id: str, find: Callable[[str], Row | None]) -> Row:
    """The caller's project's ``what`` named ``item_id`` (``find`` looks it up), or 404."""
    row = find(item_id) if plausible_id(item_id) else None
    if row is None:
        raise not_found(what, item_id[:100])
    return row
