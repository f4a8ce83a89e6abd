"""The columnar copy of an uploaded CSV dataset: made once, on the cpu queue, after upload.

``biasaudit.convert_dataset(project, dataset_id)`` is sent by the API right after the
dataset row is committed (``POST /v1/datasets`` and the direct upload's ``/complete``).
It reads the stored CSV file (this machine's verified copy for an object store), writes
:func:`audit.engine.columnar.convert_csv`'s Parquet copy beside it and, for an object
store, puts it at ``<project>/<id><ext>.columnar.parquet``. Audits that start before the
copy exists read the CSV file, as without one; a file the converter refuses keeps no
copy (logged). Idempotent: a copy already there is kept.

A worker fetches the copy with the original (:func:`fetch_copy`) when the object store
has one, and uses it only when it was made from the original's bytes (its Parquet
metadata names the original's size and sha256).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from audit.engine import columnar
from audit.settings import get_settings
from audit.storage import repo, session_scope
from audit.storage.objects import ObjectMissing, ObjectStore, get_store, stored_dataset

log = logging.getLogger("biasaudit.worker")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")


def convert_dataset(project: str, dataset_id: str) -> str:
    """Make the dataset's columnar copy: ``made``, ``exists``, ``refused``, ``not-csv``
    or ``gone`` (no such dataset)."""
    from audit.engine.confine import project_roots

    settings = get_settings()
    with session_scope() as session:
        record = repo.get_dataset(session=session, project=project, dataset_id=dataset_id)
        if record is None:
            return "gone"
        address, sha256 = record.path, record.sha256
    if not address.lower().endswith(CSV_SUFFIXES):
        return "not-csv"
    store = get_store()
    root = project_roots(settings, project).project
    local = stored_dataset(store, address, sha256=sha256, root=root)
    copy = columnar.copy_path(local)
    if copy.exists() or (store.remote and fetch_copy(store, address, local, sha256=sha256)):
        return "exists"
    try:
        rows = columnar.convert_csv(local, copy, row_group_rows=settings.shard_rows, sha256=sha256)
    except columnar.ConversionRefused as exc:
        log.info("dataset %s: no columnar copy (%s); audits read the CSV file", dataset_id, exc)
        return "refused"
    key = store.key_of(address)
    if store.remote and key is not None:
        store.put_file(key + columnar.SUFFIX, copy)
        if not copy.exists():  # moved into the store: this machine keeps one too
            fetch_copy(store, address, local, sha256=sha256)
    if _deleted_meanwhile(project, dataset_id):
        return "gone"
    log.info("dataset %s: columnar copy of %d rows", dataset_id, rows)
    return "made"


def _deleted_meanwhile(project: str, dataset_id: str) -> bool:
    """Whether the dataset was deleted while its copy was made; then the copy is removed
    as the deletion removed the rest (:func:`audit.storage.erasure.remove_bytes`)."""
    from audit.storage.erasure import remove_bytes

    with session_scope() as session:
        if repo.get_dataset(session=session, project=project, dataset_id=dataset_id):
            return False
        row = session.get(repo.Dataset, dataset_id)
        address = row.path if row is not None and row.project == project else None
    if address is not None:
        remove_bytes(get_settings(), kind="dataset", project=project, address=address)
    return True


def fetch_copy(store: ObjectStore, address: str, local: Path, *, sha256: str) -> bool:
    """Download the object store's columnar copy of the dataset at ``address`` beside this
    machine's copy ``local``, if there is one made from the original (sha256)."""
    import pyarrow.parquet as pq

    key = store.key_of(address)
    target = columnar.copy_path(local)
    if target.exists():
        return True
    if key is None:
        return False
    tmp = target.with_name(f".{target.name}.{os.getpid()}.download.tmp")
    try:
        with open(tmp, "xb") as out:
            for block in store.iter_bytes(key + columnar.SUFFIX):
                out.write(block)
        meta = pq.read_schema(tmp).metadata or {}
        if meta.get(columnar.SOURCE_SHA256) != sha256.encode():
            return False
        os.replace(tmp, target)
        return True
    except (ObjectMissing, OSError, ValueError):
        return False
    finally:
        tmp.unlink(missing_ok=True)


def sweep_deleted_copies() -> int:
    """After each audit or conversion task on a machine that copies from an object store:
    remove its cached copies of datasets and models deleted meanwhile (by an API or a
    retention run on another machine; :func:`audit.storage.erasure.sweep_deleted_copies`).
    Copies removed; a failure is logged, never the task's."""
    from audit.storage.erasure import sweep_deleted_copies as sweep

    if not get_store().remote:  # the local folder: the deletion removed the files
        return 0
    try:
        with session_scope() as session:
            removed = sweep(session=session, settings=get_settings())
    except Exception as exc:  # noqa: BLE001 - housekeeping: the next task tries again
        log.warning("sweep of deleted copies failed: %s", type(exc).__name__)
        return 0
    for path in removed:
        log.info("removed the copy %s of a deleted item", path.name)
    return len(removed)
