"""Erasure of a stored dataset or model: the one path for ``DELETE`` and the retention task.

:func:`erase` refuses (:class:`InUse`) while a queued or running audit of the project,
or an enabled schedule, names the item (:func:`audit.storage.inventory.spec_refs`);
otherwise, in the caller's transaction, it marks the row deleted (``deleted_at``,
``deleted_by``: the row and its sha256 stay, since past results.json documents name
the sha256 for provenance), appends a ``dataset.deleted`` / ``model.deleted`` event to
the hash-chained log, and removes the bytes everywhere this service put them:

- the stored file or model folder (local data folder or object store);
- a dataset's columnar copy (``<id><ext>.columnar.parquet``, both places);
- this machine's verified copies of an object-store item (``data_dir/<project>/...``)
  with their cache lock files (:func:`forget_local_copies`); a worker on another
  machine removes its own after its next task (:func:`sweep_deleted_copies`), and never
  uses one meanwhile (it reads the row first, ``workers/inputs.py``).

The bytes go before the caller commits: if the store fails, the transaction rolls
back and the item stays live (a repeated ``DELETE`` finishes the job; removing what
is already gone is not an error). The event is appended last, so the log's head is
not held locked while the store works. The row is locked first (``FOR UPDATE`` on
PostgreSQL), so two deletions of one item record one event.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.engine.columnar import SUFFIX as COLUMNAR
from audit.storage.cache import lock_path
from audit.storage.db import lock_writes
from audit.storage.events import append_event
from audit.storage.inventory import DATASET, MODEL, TABLES, spec_refs
from audit.storage.models import Audit, Schedule, utcnow
from audit.storage.objects import SCHEME, LocalStore, get_store, remove

log = logging.getLogger("biasaudit.storage")
ACTIVE = ("queued", "running")
MSG_IN_USE = (
    "{kind} {id} is in use: {uses}. Wait for the audits to finish (or cancel them) and "
    "disable or change the schedules, then delete it"
)


@dataclass(eq=False)
class InUse(Exception):
    """The item is named by active audits or enabled schedules (ids, sorted)."""

    kind: str
    item_id: str
    audits: list[str] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        uses = []
        if self.audits:
            uses.append(f"queued or running audit(s) {', '.join(self.audits)}")
        if self.schedules:
            uses.append(f"enabled schedule(s) {', '.join(self.schedules)}")
        return MSG_IN_USE.format(kind=self.kind, id=self.item_id, uses="; ".join(uses))


class EraseFailed(RuntimeError):
    """The store could not delete the bytes (the deletion is rolled back; try again)."""


def blockers(*, session: Session, project: str, kind: str, item_id: str) -> InUse | None:
    """The active audits and enabled schedules of ``project`` that name the item, or None."""
    audits = session.execute(
        select(Audit.id, Audit.spec).where(Audit.project == project, Audit.status.in_(ACTIVE))
    )
    schedules = session.execute(
        select(Schedule.id, Schedule.spec).where(
            Schedule.project == project, Schedule.enabled.is_(True)
        )
    )
    found = InUse(
        kind,
        item_id,
        audits=sorted(i for i, spec in audits if item_id in spec_refs(spec)[kind]),
        schedules=sorted(i for i, spec in schedules if item_id in spec_refs(spec)[kind]),
    )
    return found if found.audits or found.schedules else None


def find_deleted(*, session: Session, project: str, kind: str, item_id: str) -> Any | None:
    """The project's deleted dataset or model ``item_id``, or None."""
    table = TABLES[kind]
    return session.scalars(
        select(table).where(
            table.id == item_id, table.project == project, table.deleted_at.is_not(None)
        )
    ).one_or_none()


def erase(
    *,
    session: Session,
    settings: Any,
    project: str,
    kind: str,
    item_id: str,
    actor: str,
    reason: str = "request",
) -> Any | None:
    """Delete the project's live ``kind`` (``dataset`` or ``model``) ``item_id``: the row
    marked, the event appended, the bytes removed; the caller commits. None when the
    project has no such live item; :class:`InUse` when something still needs it."""
    table = TABLES[kind]
    lock_writes(session)  # SQLite: a submission naming it waits, or this waits for it
    row = session.scalars(
        select(table)
        .where(table.id == item_id, table.project == project, table.deleted_at.is_(None))
        .with_for_update()
    ).one_or_none()
    if row is None:
        return None
    refusal = blockers(session=session, project=project, kind=kind, item_id=item_id)
    if refusal is not None:
        raise refusal
    row.deleted_at = utcnow()
    row.deleted_by = actor[:200]
    session.flush()
    try:
        remove_bytes(settings, kind=kind, project=project, address=row.path)
    except Exception as exc:  # the caller rolls back: the row stays live, a retry finishes
        raise EraseFailed(f"{kind} {item_id}: the store did not delete it") from exc
    append_event(  # last: the log's head stays locked until the commit, not during the store
        session=session,
        action=f"{kind}.deleted",
        actor=actor,
        subject=f"{kind}/{item_id}",
        project=project,
        detail={"sha256": row.sha256, "reason": reason},
    )
    return row


def remove_bytes(settings: Any, *, kind: str, project: str, address: str) -> None:
    """Remove a stored item's bytes: the object or folder at ``address``, a dataset's
    columnar copy, and this machine's copies of an object-store item."""
    suffixes = (COLUMNAR,) if kind == DATASET else ()
    store = get_store(settings)
    key = store.key_of(address)
    if key is None and not address.startswith(SCHEME):  # stored before a store was set up
        store = LocalStore(settings.data_path)
        key = store.key_of(address)
    if key is None:
        log.warning("%s of project %s: %s is outside the configured store", kind, project, address)
    else:
        remove(store, key)
        for suffix in suffixes:
            store.delete(key + suffix)
    if address.startswith(SCHEME):
        forget_local_copies(settings, kind=kind, project=project, address=address)


def forget_local_copies(settings: Any, *, kind: str, project: str, address: str) -> None:
    """Delete this machine's copies of the object-store item at ``address`` (where
    :func:`audit.storage.objects.stored_dataset` / ``stored_model`` put them) and
    their cache lock files; nothing there is not an error."""
    root = settings.data_path / project
    name = address.rsplit("/", 1)[-1]
    copy = root / name if kind == DATASET else root / "models" / name
    suffixes = ("", COLUMNAR) if kind == DATASET else ("",)
    for suffix in suffixes:
        path = copy.with_name(copy.name + suffix)
        _unlink(path)
        _unlink(lock_path(path))


def sweep_deleted_copies(*, session: Session, settings: Any) -> list[Path]:
    """Delete this machine's cached copies (:func:`audit.storage.cache.copies`) of items
    deleted since they were copied, wherever the deletion ran; the copies removed.

    A copy's path names its project and id (``<project>/<id><ext>``,
    ``<project>/models/<id>[.skops]``), so one query per kind finds the deleted ones."""
    from audit.storage.cache import copies

    root = settings.data_path
    found: dict[tuple[str, str], list[Path]] = {}
    for _, copy, _ in copies(root) if root.is_dir() else []:
        parts = copy.relative_to(root).parts
        kind = MODEL if len(parts) == 3 and parts[1] == "models" else DATASET
        if len(parts) == (3 if kind == MODEL else 2):
            found.setdefault((kind, copy.name[:36]), []).append(copy)
    removed: list[Path] = []
    for kind, table in TABLES.items():
        ids = sorted({item_id for k, item_id in found if k == kind})
        if not ids:
            continue
        rows = session.execute(
            select(table.id, table.project, table.path).where(
                table.id.in_(ids), table.deleted_at.is_not(None)
            )
        )
        for item_id, project, address in rows:
            if address.startswith(SCHEME):
                forget_local_copies(settings, kind=kind, project=project, address=address)
                removed += found[(kind, item_id)]  # ids are unique across projects
    return removed


def _unlink(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
