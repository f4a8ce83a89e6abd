"""Where uploaded files live: the local data folder (default) or an S3-compatible store.

One small interface, :class:`ObjectStore`, with two implementations:

- :class:`LocalStore` (``BIASAUDIT_STORAGE_URL`` unset): keys are paths under
  ``BIASAUDIT_DATA_DIR``; a stored file's address is its absolute path, exactly
  as before object storage existed (one machine, or a shared folder).
- :class:`audit.storage.s3.S3Store` (``BIASAUDIT_STORAGE_URL=s3://bucket/prefix``): keys are
  object names under the prefix; a stored file's address is ``s3://bucket/key``.
  Endpoint, region and credentials come from ``BIASAUDIT_STORAGE_*`` settings
  (or boto3's usual chain: ``AWS_*`` variables, instance roles); they are never
  logged nor put in an error message.

Every key the server builds starts with the project (tenant) name, so one
project can never name another's objects. Workers read a stored dataset
through :func:`local_copy`, which downloads it once per machine to the very
place a local upload would have (``BIASAUDIT_DATA_DIR/<project>/<id><ext>``),
verified against the SHA-256 recorded at upload: the engine then opens it like
any local file, and every rule about the project folder (a model is never
loaded from a dataset upload, paths stay inside the project) holds unchanged.
Models are stored the same way (a ``.skops`` file, or a Hugging Face folder as
one object per file) and verified against their fingerprint. Those copies are
bounded per machine (``BIASAUDIT_CACHE_BYTES``, :mod:`audit.storage.cache`). The
planner and the shards of a sharded audit copy nothing: they read by ranged GETs
pinned to the registered ETag (:mod:`audit.storage.ranged`, ``workers/inputs.py``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from audit.errors import AuditInputError
from audit.settings import parse_storage_url

log = logging.getLogger("biasaudit.storage")
SCHEME = "s3://"
READ_BLOCK = 1 << 20
MSG_CHANGED = (
    "{field}: the stored object {key} no longer has the SHA-256 recorded at upload "
    "({expected}); it was changed in the object store. Upload it again"
)
MSG_MISSING = "{field}: the stored object {key} is missing from the object store"


class ObjectMissing(LookupError):
    """The key names no object."""


class ObjectReplaced(LookupError):
    """The object no longer has the ETag a read was pinned to (``If-Match`` failed)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD tells: size in bytes and a version tag (ETag or mtime)."""

    size: int
    etag: str


class ObjectStore(Protocol):
    """A flat namespace of byte objects addressed by ``project/...`` keys."""

    remote: bool

    def address(self, key: str) -> str: ...
    def key_of(self, address: str) -> str | None: ...
    def put_file(self, key: str, source: Path) -> str: ...
    def put_bytes(self, key: str, data: bytes, content_type: str) -> str: ...
    def head(self, key: str) -> ObjectInfo: ...
    def iter_bytes(self, key: str, *, etag: str | None = None) -> Iterator[bytes]: ...
    def read_range(self, key: str, start: int, stop: int, *, etag: str | None = None) -> bytes: ...
    def copy(self, source: str, target: str, *, etag: str | None = None) -> str: ...
    def delete(self, key: str) -> None: ...
    def list(self, key: str) -> list[str]: ...
    def presigned_put(self, key: str, *, seconds: int) -> str | None: ...
    def presigned_post(
        self, key: str, *, seconds: int, max_bytes: int
    ) -> dict[str, Any] | None: ...


def check_key(key: str) -> str:
    """Refuse keys that could leave their project: absolute, ``..``, empty parts."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"object key {key!r} is not a plain relative key")
    return key


class LocalStore:
    """Keys are files under ``root`` (``BIASAUDIT_DATA_DIR``)."""

    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def address(self, key: str) -> str:
        return str(self._path(key))

    def key_of(self, address: str) -> str | None:
        try:
            return Path(address).relative_to(self.root).as_posix()
        except ValueError:
            return None

    def put_file(self, key: str, source: Path) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return str(target)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return str(target)

    def head(self, key: str) -> ObjectInfo:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        return ObjectInfo(size=st.st_size, etag=str(st.st_mtime_ns))

    def iter_bytes(self, key: str, *, etag: str | None = None) -> Iterator[bytes]:
        with open(self._path(key), "rb") as f:
            while block := f.read(READ_BLOCK):
                yield block

    def read_range(self, key: str, start: int, stop: int, *, etag: str | None = None) -> bytes:
        with open(self._path(key), "rb") as f:
            if etag is not None and str(os.fstat(f.fileno()).st_mtime_ns) != etag:
                raise ObjectReplaced(key)
            f.seek(start)
            return f.read(max(0, stop - start))

    def copy(self, source: str, target: str, *, etag: str | None = None) -> str:
        dest = self._path(target)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(source), dest)
        return str(dest)

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def list(self, key: str) -> list[str]:
        base = self._path(key)
        if not base.is_dir():
            return []
        return sorted(
            f"{key}/{p.relative_to(base).as_posix()}" for p in base.rglob("*") if p.is_file()
        )

    def presigned_put(self, key: str, *, seconds: int) -> str | None:
        return None  # the local folder has no upload URL: use POST /v1/datasets

    def presigned_post(self, key: str, *, seconds: int, max_bytes: int) -> dict[str, Any] | None:
        return None


_STORES: dict[int, tuple[Any, ObjectStore]] = {}


def get_store(settings: Any | None = None) -> ObjectStore:
    """The configured store (one per settings object: a boto3 client is reused)."""
    if settings is None:
        from audit.settings import get_settings

        settings = get_settings()
    cached = _STORES.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    store: ObjectStore
    if settings.storage_url is None:
        store = LocalStore(settings.data_path)
    else:
        from audit.storage.s3 import S3Store, s3_client

        bucket, prefix = parse_storage_url(settings.storage_url)
        signer = s3_client(settings, public=True) if settings.storage_public_endpoint_url else None
        store = S3Store(bucket, prefix, s3_client(settings), signer)
    if len(_STORES) > 8:
        _STORES.clear()
    _STORES[id(settings)] = (settings, store)
    return store


def put_tree(store: ObjectStore, key: str, folder: Path) -> str:
    """Store every file under ``folder`` as ``key/<relative path>``; the folder's address.

    The local store keeps the folder where it is (its address is the folder)."""
    if not store.remote:
        target = Path(store.address(key))
        if folder != target:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder, target)
        return str(target)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            store.put_file(f"{key}/{path.relative_to(folder).as_posix()}", path)
    return store.address(key)


def put_pinned(store: ObjectStore, key: str, source: Path) -> tuple[str, str | None]:
    """Store ``source`` as ``key``: its address, and for a remote store the ETag of the
    version written (recorded with the dataset; ranged reads are pinned to it)."""
    address = store.put_file(key, source)
    return address, store.head(key).etag if store.remote else None


def remove(store: ObjectStore, key: str) -> None:
    """Delete the object ``key``, or every object of the folder ``key``."""
    for name in store.list(key):
        store.delete(name)
    store.delete(key)


def _download(store: ObjectStore, key: str, dest: Path) -> None:
    with open(dest, "xb") as out:
        for block in store.iter_bytes(key):
            out.write(block)


def local_copy(
    store: ObjectStore,
    address: str,
    target: Path,
    *,
    sha256: str,
    folder: bool = False,
    field: str = "dataset.id",
    cache: tuple[Path, int | None] | None = None,
) -> Path:
    """A local file (or ``folder``) holding the object(s) at ``address``, verified.

    A local address is returned as it is. Remote objects are downloaded beside
    ``target`` and renamed into place only when their fingerprint
    (:func:`probes.models.fingerprint.fingerprint`: the plain SHA-256 of a file)
    equals ``sha256``, recorded at upload; so a tampered or truncated object is an
    input error naming ``field``, never audited; a file's verified digest is remembered
    (:func:`probes.util.remember_sha256`), so the engine does not hash the bytes again
    for ``dataset.sha256`` in results.json. A ``target`` already present (same machine,
    earlier audit) is reused, and hashed by the engine. The copy is pinned until the task ends
    (:mod:`audit.storage.cache`); ``cache`` = (root, bytes): after a download, unused
    copies under root are evicted, least recently used first, down to that many bytes.
    """
    from audit.storage import cache as copies
    from probes.models.fingerprint import fingerprint
    from probes.util import remember_sha256

    key = store.key_of(address)
    if not store.remote or key is None:
        return Path(address)
    copies.pin(target)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.download.tmp")
    try:
        if folder:
            keys = store.list(key)
            if not keys:
                raise ObjectMissing(key)
            for name in keys:
                part = tmp / name[len(key) + 1 :]
                part.parent.mkdir(parents=True, exist_ok=True)
                _download(store, check_key(name), part)
        else:
            _download(store, key, tmp)
        if fingerprint(tmp) != sha256:
            message = MSG_CHANGED.format(field=field, key=key, expected=sha256)
            raise AuditInputError(message, field=field)
        os.replace(tmp, target)
        if not folder:  # the engine's dataset.sha256 is this digest: not read again
            remember_sha256(target, sha256)
    except ObjectMissing:
        raise AuditInputError(MSG_MISSING.format(field=field, key=key), field=field) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    if cache is not None and cache[1] is not None:
        copies.evict(cache[0], cache[1])
    return target


def _cache() -> tuple[Path, int | None]:
    from audit.settings import get_settings

    settings = get_settings()
    return settings.data_path, settings.cache_bytes


def stored_dataset(store: ObjectStore, address: str, *, sha256: str, root: Path) -> Path:
    """A local path to the stored dataset at ``address``: the path itself in the local
    folder; for an object store, this machine's verified copy where a local upload
    would be (``root/<id><ext>``, ``root`` the project folder)."""
    name = address.rsplit("/", 1)[-1]
    return local_copy(store, address, root / name, sha256=sha256, cache=_cache())


def stored_model(store: ObjectStore, address: str, *, sha256: str, root: Path) -> Path:
    """Like :func:`stored_dataset` for an uploaded model (``root/models/<id>[.skops]``),
    verified against its fingerprint; a name without a suffix is a (Hugging Face) folder."""
    name = address.rsplit("/", 1)[-1]
    folder = not Path(name).suffix
    target = root / "models" / name
    return local_copy(
        store, address, target, sha256=sha256, folder=folder, field="model.id", cache=_cache()
    )


def export_results(
    store: ObjectStore, project: str, audit_id: str, *, results: dict[str, Any], html: str
) -> None:
    """Copy a stored audit's results.json and HTML report to an object store, as
    ``<project>/audits/<id>/results.json`` and ``report.html``, for readers outside the
    API (a data lake, another region). The database stays the record the API serves; a
    failure here is logged and never fails the audit. The local folder gets no copy."""
    if not store.remote:
        return
    base = f"{project}/audits/{audit_id}"
    try:
        body = json.dumps(results, indent=2, sort_keys=False).encode("utf-8")
        store.put_bytes(f"{base}/results.json", body, "application/json")
        store.put_bytes(f"{base}/report.html", html.encode("utf-8"), "text/html; charset=utf-8")
    except Exception as exc:  # noqa: BLE001 - the database already holds the result
        log.warning("results of audit %s not copied to the object store: %s", audit_id, exc)
