"""The data page: the project's stored datasets and models, and their erasure.

Listing reads what ``GET /v1/datasets`` / ``GET /v1/models`` read
(:func:`audit.api.erasure.page`: one page, newest first, with usage); deleting goes
through the API's own ``DELETE`` code (:func:`audit.api.erasure.delete`, which calls
:func:`audit.storage.erasure.erase`), so the page and the API share one rule for
roles, tenancy, "in use" (``409``) and "already deleted" (``410``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.api import erasure as api_erasure
from audit.api.deps import SUBMIT_ROLES, authorize
from audit.api.errors import ApiError
from audit.settings import Settings
from audit.storage.erasure import blockers, find_deleted
from audit.storage.inventory import DATASET, MODEL, TABLES
from audit.storage.models import plausible_id
from audit.ui.security import UiError, Viewer
from audit.ui.views import MAX_PAGE_NUMBER, PAGE_SIZE, when

KINDS = {"datasets": DATASET, "models": MODEL}  # URL segment -> inventory kind
MSG_CONFIRM = "confirm: type the {kind}'s id ({id}) to confirm the deletion"


def kind_of(segment: str) -> str:
    """The inventory kind of a URL segment (``datasets``, ``models``), else the 404 page."""
    kind = KINDS.get(segment)
    if kind is None:
        raise UiError(404, f"No page {segment[:40]!r}: use datasets or models.")
    return kind


def can_delete(viewer: Viewer) -> bool:
    """Submitters and admins may delete (the API's rule for ``DELETE``)."""
    return viewer.user.role in SUBMIT_ROLES


def require_deleter(viewer: Viewer) -> None:
    refusal = authorize(viewer.user.role, SUBMIT_ROLES, action="delete datasets or models")
    if refusal is not None:
        raise UiError(refusal.status_code, refusal.detail)


def size(value: int | None) -> str:
    """Bytes for people: ``512 B``, ``1.5 kB``, ``2.0 MB`` (— when unknown)."""
    if value is None:
        return "—"
    if value < 1000:
        return f"{value} B"
    amount, unit = float(value) / 1000, "kB"
    for bigger in ("MB", "GB", "TB"):
        if amount < 1000:
            break
        amount, unit = amount / 1000, bigger
    return f"{amount:.1f} {unit}"


def shape(kind: str, row: Any) -> str:
    """A dataset's rows × columns; a model's kind and file count."""
    if kind == DATASET:
        columns = len(row.columns or [])
        return f"{row.rows:,} rows × {columns} column{'' if columns == 1 else 's'}"
    files = f" · {row.files} files" if row.files else ""
    return f"{row.kind}{files}"


def item_row(kind: str, row: Any, used: Any = None) -> dict[str, Any]:
    """One stored item as formatted values for the page."""
    audits = used.audits if used is not None else 0
    return {
        "id": row.id,
        "name": row.filename or row.id[:8],
        "sha256": row.sha256,
        "size": size(row.size_bytes),
        "shape": shape(kind, row),
        "created": when(row.created_at),
        "audits": audits,
        "last_used": when(used.last_used_at) if used is not None else "—",
        # the audits list filters by model fingerprint; datasets have no such filter
        "audits_link": f"/ui/?model={row.sha256}" if kind == MODEL and audits else "",
        "deleted_at": when(row.deleted_at),
        "deleted_by": row.deleted_by or "—",
    }


def _page_number(params: Mapping[str, str], field: str) -> int:
    raw = params.get(field) or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_NUMBER:
        raise UiError(422, f"{field}: {raw[:20]!r} is not a page number (1-{MAX_PAGE_NUMBER})")
    return int(raw)


def _section(
    session: Session, viewer: Viewer, params: Mapping[str, str], segment: str, deleted: bool
) -> dict[str, Any]:
    kind, field = KINDS[segment], f"{segment}_page"
    page = _page_number(params, field)
    items, total = api_erasure.page(
        session,
        viewer.user.project,
        kind,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        deleted=deleted,
    )
    pages = max(1, -(-total // PAGE_SIZE))
    kept = {k: v for k, v in params.items() if k in ("view", *(f"{s}_page" for s in KINDS))}

    def link(n: int) -> str:
        return "/ui/data?" + urlencode({**kept, field: str(n)})

    return {
        "segment": segment,
        "kind": kind,
        "rows": [item_row(kind, row, used) for row, used in items],
        "total": total,
        "page": page,
        "pages": pages,
        "prev": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < pages else None,
    }


def data_page(session: Session, viewer: Viewer, params: Mapping[str, str]) -> dict[str, Any]:
    """Both sections (datasets, models) of the live or the deleted view, and the flash of
    a deletion just made (only when that item really is deleted in this project)."""
    view = params.get("view") or "live"
    if view not in ("live", "deleted"):
        raise UiError(422, f"view: {view[:20]!r} is not one of live, deleted")
    deleted = view == "deleted"
    sections = [_section(session, viewer, params, s, deleted) for s in KINDS]
    return {
        "view": view,
        "sections": sections,
        "can_delete": can_delete(viewer) and not deleted,
        "flash": _flash(session, viewer, params.get("erased", "")),
    }


def _flash(session: Session, viewer: Viewer, erased: str) -> str:
    segment, _, item_id = erased.partition(":")
    kind = KINDS.get(segment)
    if kind is None or not plausible_id(item_id):
        return ""
    row = find_deleted(session=session, project=viewer.user.project, kind=kind, item_id=item_id)
    if row is None:
        return ""
    name = f" ({row.filename})" if row.filename else ""
    return f"{kind.capitalize()} {row.id}{name} deleted: its bytes are gone, its sha256 stays."


def load_live(session: Session, viewer: Viewer, segment: str, item_id: str) -> Any:
    """The project's live item, else the 410 page (deleted) or 404 (none, or another
    project's: the API's own lookup)."""
    kind = kind_of(segment)
    table = TABLES[kind]
    row = None
    if plausible_id(item_id):
        row = session.scalars(
            select(table).where(
                table.id == item_id,
                table.project == viewer.user.project,
                table.deleted_at.is_(None),
            )
        ).one_or_none()
    if row is None:
        exc = api_erasure.gone(session, viewer.user.project, kind, item_id)
        raise UiError(exc.status_code, exc.detail)
    return row


def confirm_page(session: Session, viewer: Viewer, segment: str, item_id: str) -> dict[str, Any]:
    """The confirmation step: the item, and what still needs it (if anything)."""
    require_deleter(viewer)
    row = load_live(session, viewer, segment, item_id)
    kind = KINDS[segment]
    refusal = blockers(session=session, project=viewer.user.project, kind=kind, item_id=row.id)
    in_use = None
    if refusal is not None:
        in_use = {"audits": refusal.audits, "schedules": refusal.schedules}
    return {"segment": segment, "kind": kind, "item": item_row(kind, row), "in_use": in_use}


def delete_from_form(
    session: Session, viewer: Viewer, settings: Settings, segment: str, item_id: str,
    fields: Mapping[str, str],
) -> dict[str, Any] | None:  # fmt: skip
    """Erase the item through the API's ``DELETE`` code; None when done, else the
    confirm page's context with the refusal (``error``, ``in_use``, ``status``)."""
    context = confirm_page(session, viewer, segment, item_id)
    typed = (fields.get("confirm") or "").strip()
    if typed != context["item"]["id"]:
        message = MSG_CONFIRM.format(kind=context["kind"], id=context["item"]["id"])
        return {**context, "error": message, "status": 422}
    try:
        api_erasure.delete(session, settings, viewer.token, context["kind"], item_id)
    except ApiError as exc:
        session.rollback()
        if exc.status_code != 409:
            raise UiError(exc.status_code, exc.detail) from None
        in_use = {k: list(exc.extra.get(k) or []) for k in ("audits", "schedules")}
        return {**context, "error": exc.detail, "in_use": in_use, "status": 409}
    return None
