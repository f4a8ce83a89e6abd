"""What the upload routes (``/v1/datasets``, ``/v1/models``) share.

Both take one multipart field ``file``, stream it to disk with the request's
database connection released, and record a row for it (removing the stored file if
the row cannot be committed, so nothing is left that no row names). Listing, lookup
and deletion are in :mod:`audit.api.erasure`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

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
