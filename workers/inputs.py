"""What a worker audits: the spec with its dataset and model resolved, confined to the project.

A dataset uploaded to an object store is read one of two ways (docs/scaling.md):

- by ranged GETs (:class:`audit.storage.ranged.StoredFile`), pinned to the ETag the
  registration recorded, by the planner (Parquet footer, CSV cuts) and by every
  shard: each machine fetches only its shard's bytes, never the whole file;
- as a whole local copy verified by SHA-256 (:func:`audit.storage.objects.local_copy`,
  kept in the machine's bounded cache) when the audit runs in one process: not
  count-only, below the shard thresholds, or a file that cannot be split. Models
  are always whole copies. Datasets registered before ETags were recorded (none in
  the row) are read as whole copies too.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from audit.errors import AuditInputError
from audit.settings import get_settings
from audit.storage import repo, session_scope
from audit.storage.erasure import find_deleted, forget_local_copies
from audit.storage.inventory import DATASET, MODEL
from audit.storage.objects import SCHEME, ObjectMissing, get_store, stored_dataset, stored_model
from audit.storage.ranged import StoredFile
from workers.uploads import resolve_probe_uploads

MSG_DELETED = "{kind}.id: {kind} {id} was deleted at {at}; upload it again to audit it"


def _resolve_model(model: dict[str, Any], *, project: str, root: Path) -> None:
    """Replace ``model.id`` with the stored model's project-relative path (an input error
    when the project has no such model); confine_spec then checks that path."""
    with session_scope() as session:
        record = repo.get_model(session=session, project=project, model_id=str(model["id"]))
        if record is None:
            _refuse_deleted(session, MODEL, str(model["id"]), project)
            raise AuditInputError(
                f"model.id: no model {model['id']!r} in project {project!r}; "
                "upload it with POST /v1/models",
                field="model.id",
            )
        address, fingerprint = record.path, record.sha256
    local = stored_model(get_store(), address, sha256=fingerprint, root=root)
    model["path"] = os.path.relpath(local, root)
    del model["id"]  # the engine runs it by path (not both): errors name model.id again
    # the engine checks the loaded model's fingerprint (its loader computes it anyway)
    # against the upload's (audit.engine.integrity.for_upload names model.id)
    model["sha256"] = fingerprint


def _dataset_record(dataset_id: str, project: str) -> Any:
    with session_scope() as session:
        record = repo.get_dataset(session=session, project=project, dataset_id=dataset_id)
        if record is None:
            _refuse_deleted(session, DATASET, dataset_id, project)
            raise AuditInputError(
                f"dataset.id: no dataset {dataset_id!r} in project {project!r}; "
                "upload it with POST /v1/datasets",
                field="dataset.id",
            )
        session.expunge(record)
        return record


def _refuse_deleted(session: Any, kind: str, item_id: str, project: str) -> None:
    """An input error naming ``<kind>.id`` when the item was deleted, after removing this
    machine's copies of it (a cached copy of a deleted item is never used again)."""
    row = find_deleted(session=session, project=project, kind=kind, item_id=item_id)
    if row is None:
        return
    if row.path.startswith(SCHEME):
        forget_local_copies(get_settings(), kind=kind, project=project, address=row.path)
    raise AuditInputError(
        MSG_DELETED.format(kind=kind, id=item_id, at=row.deleted_at.isoformat()),
        field=f"{kind}.id",
    )


def resolve_dataset(
    spec: dict[str, Any], *, project: str, ranged: bool = False
) -> tuple[dict[str, Any], Path, int | None]:
    """The spec as the engine runs it, the project folder, and the stored row count.

    ``dataset.id`` (and a probe's uploaded file, ``train_id``) is looked up in the
    project's datasets; then
    :func:`audit.engine.confine.confine_spec` checks the spec exactly as the API did
    at submission (the worker trusts no path and no ``model.trusted``); the engine
    runs the result with the project folder as its base folder. A refusal is an
    input error: the audit fails, no retry. With ``ranged``, a dataset that
    :func:`ranged_source` reads by ranges is not copied: ``dataset.path`` is then
    only its name (the reader is given the :class:`StoredFile`).
    """
    from audit.engine.confine import confine_spec, project_roots

    roots = project_roots(get_settings(), project)
    spec = copy.deepcopy(spec)
    dataset = spec.setdefault("dataset", {})
    rows, name = None, None
    if dataset.get("id"):
        record = _dataset_record(str(dataset["id"]), project)
        rows = int(record.rows)
        # expected by the engine, which hashes the bytes it reads (once): a file changed
        # since its upload is an input error naming dataset.id and both digests
        dataset["sha256"] = record.sha256
        if ranged and _rangeable(record):
            name = record.path.rsplit("/", 1)[-1]
        else:
            # a stored object is read from this machine's copy (downloaded once, verified);
            # project-relative, so that no message shows the server's folders
            local = stored_dataset(
                get_store(), record.path, sha256=record.sha256, root=roots.project
            )
            if get_store().remote:  # the upload's columnar copy, when made (workers.columnar)
                from workers.columnar import fetch_copy

                fetch_copy(get_store(), record.path, local, sha256=record.sha256)
            dataset["path"] = os.path.relpath(local, roots.project)
    model = spec.get("model")
    if isinstance(model, dict) and model.get("id"):
        _resolve_model(model, project=project, root=roots.project)
    resolve_probe_uploads(spec, project=project, root=roots.project)  # e.g. train_id
    resolved = confine_spec(spec, roots=roots).resolved
    if name is not None:  # read by ranges: the name alone, nothing local to confine
        resolved = {**resolved, "dataset": {**resolved["dataset"], "path": name}}
    return resolved, roots.project, rows


def _rangeable(record: Any) -> bool:
    return bool(record.etag) and get_store().remote and get_store().key_of(record.path) is not None


def ranged_source(spec: dict[str, Any], *, project: str) -> StoredFile | None:
    """The stored dataset of ``spec`` (``dataset.id``) as a :class:`StoredFile` pinned to
    its registered ETag and size, or None when it is read from a local file."""
    dataset_id = (spec.get("dataset") or {}).get("id")
    if not dataset_id or not get_store().remote:  # a local folder: no lookup needed
        return None
    record = _dataset_record(str(dataset_id), project)
    if not _rangeable(record):
        return None
    store = get_store()
    key = store.key_of(record.path)
    assert key is not None
    block = get_settings().range_block_bytes
    stored = StoredFile(
        store,
        key,
        size=int(record.size_bytes),
        etag=str(record.etag),
        sha256=str(record.sha256),
        block=block,
    )
    stored.columnar = _columnar_copy(store, key, block)
    return stored


def _columnar_copy(store: Any, key: str, block: int) -> StoredFile | None:
    """The upload's columnar copy in the store (workers.columnar), read by ranges too,
    pinned to the ETag it has now; None when there is none (yet). The reader uses it only
    when its metadata names the original's size (audit.engine.columnar.usable)."""
    from audit.engine.columnar import SUFFIX

    try:
        info = store.head(key + SUFFIX)
    except ObjectMissing:
        return None
    copy_key = key + SUFFIX
    return StoredFile(store, copy_key, size=info.size, etag=info.etag, sha256="", block=block)
