"""What ``/v1/datasets`` and ``/v1/models`` share for listing and deletion.

- ``GET /v1/{datasets,models}``: one page of the project's items, newest first,
  each with its :class:`audit.storage.inventory.Usage` (``?deleted=true``: the
  erased ones, with ``deleted_at`` and ``deleted_by``);
- ``GET /v1/{kind}s/{id}`` of a deleted item: ``410`` with its sha256, ``deleted_at``
  and ``deleted_by`` (another project's id, deleted or not, stays ``404``);
- ``DELETE /v1/{kind}s/{id}``: :func:`audit.storage.erasure.erase` as the token's
  person; ``409`` naming the audits and schedules that still need it, ``410`` when
  already deleted, ``503`` when the object store failed (nothing changed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from audit.api.deps import TokenInfo
from audit.api.errors import RETRY_AFTER, ApiError, not_found
from audit.api.schemas import DeletedPublic, ErrorPublic, InUsePublic, Usage
from audit.settings import Settings
from audit.storage.erasure import EraseFailed, InUse, erase, find_deleted
from audit.storage.inventory import list_items, usage
from audit.storage.models import plausible_id

Row = TypeVar("Row")
MSG_GONE = "{kind} {id} was deleted at {at}; its sha256 stays in the results that used it"
MSG_STORE = "object store unavailable: {kind} {id} was not deleted; try again"


def responses(kind: str, *, delete: bool) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI 4xx of a read (``delete`` False) or a deletion of one item."""
    answers: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorPublic, "description": f"no {kind} with this id in the project"},
        410: {"model": DeletedPublic, "description": f"the {kind} was deleted (sha256, when)"},
    }
    if delete:
        answers[403] = {"model": ErrorPublic, "description": "a reviewer token may not delete"}
        answers[409] = {
            "model": InUsePublic,
            "description": "queued or running audits or enabled schedules name it (their ids)",
        }
        answers[503] = {"model": ErrorPublic, "description": "object store or database down"}
    return answers


def gone(session: Session, project: str, kind: str, item_id: str) -> ApiError:
    """410 for a deleted item of ``project``, else 404."""
    row = None
    if plausible_id(item_id):
        row = find_deleted(session=session, project=project, kind=kind, item_id=item_id)
    if row is None:
        return not_found(kind, item_id[:100])
    at = row.deleted_at.isoformat()
    extra = {"id": row.id, "sha256": row.sha256, "deleted_at": at, "deleted_by": row.deleted_by}
    return ApiError(410, MSG_GONE.format(kind=kind, id=row.id, at=at), extra=extra)


def find_live(
    session: Session, project: str, kind: str, item_id: str, find: Callable[[str], Row | None]
) -> Row:
    """The project's live item ``item_id`` (``find`` looks it up), else 410 or 404."""
    row = find(item_id) if plausible_id(item_id) else None
    if row is None:
        raise gone(session, project, kind, item_id)
    return row


def page(
    session: Session, project: str, kind: str, *, limit: int, offset: int, deleted: bool
) -> tuple[list[tuple[Any, Usage]], int]:
    """One page of items with their usage, and the total."""
    rows, total = list_items(
        session=session, project=project, kind=kind, limit=limit, offset=offset, deleted=deleted
    )
    used = usage(session=session, project=project, kind=kind, ids=[r.id for r in rows])
    out = []
    for row in rows:
        seen = used.get(row.id)
        count, last = (0, None) if seen is None else (seen.audits, seen.last_used_at)
        out.append((row, Usage(audits=count, last_used_at=last)))
    return out, total


def delete(session: Session, settings: Settings, token: TokenInfo, kind: str, item_id: str) -> None:
    """Erase the item as the token's person and commit (or raise the refusal)."""
    if not plausible_id(item_id):
        raise not_found(kind, item_id[:100])
    try:
        row = erase(
            session=session,
            settings=settings,
            project=token.project,
            kind=kind,
            item_id=item_id,
            actor=token.actor,
        )
    except InUse as exc:
        extra = {"audits": exc.audits, "schedules": exc.schedules}
        raise ApiError(409, str(exc), extra=extra) from None
    except EraseFailed:
        raise ApiError(503, MSG_STORE.format(kind=kind, id=item_id), headers=RETRY_AFTER) from None
    if row is None:
        raise gone(session, token.project, kind, item_id)
    session.commit()
