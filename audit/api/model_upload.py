"""Model uploads (``POST /v1/models``): a ``.skops`` file, or a Hugging Face folder as an archive.

The ``file`` part streams to a temporary file in the project's data folder
(:func:`audit.api.uploads.receive_file`: ``413`` past
``BIASAUDIT_MAX_MODEL_UPLOAD_BYTES``), then, from the bytes, never from the name:

- a pickle (``\\x80`` magic, a protocol-0 stream that imports, a compressed
  pickle, a zip holding ``.pkl``) is ``415``: unpickling runs code;
- a zip with ``schema.json`` is a skops file: its types, as
  :func:`skops.io.get_untrusted_types` lists them, must all be on the same allowlist
  ``biasaudit run`` uses (:mod:`probes.models.sklearn`), else ``422`` naming them;
- any other zip, or a tar (plain, gzip, bz2, xz), is a Hugging Face folder. Every
  entry is checked before anything is written: no absolute path, no ``..``, no
  drive letter or backslash, only files and folders (no symlinks, hard links,
  devices), no ``.py`` file, no pickle-format weights (``.bin``, ``.pt``, ``.pkl``
  ... : upload ``model.safetensors``; the API never unpickles, not even with
  ``weights_only``); at most ``BIASAUDIT_MAX_MODEL_FILES`` entries and
  ``BIASAUDIT_MAX_MODEL_UNPACKED_BYTES`` in all, counted as the bytes are written
  (a zip bomb stops there). The unpacked folder then passes
  :func:`probes.models.hf_folder.check_model_folder` (``config.json``, no
  ``auto_map``, safetensors weights) and every file is sniffed for pickle content.

Only a model that passes is moved into ``data_dir/<project>/models/<id>`` (``.skops``
or a folder), and with ``BIASAUDIT_STORAGE_URL`` uploaded to the object store under the
same key (:mod:`audit.storage.objects`); every exit path removes the temporary files.
``sha256`` is the model's fingerprint (:func:`probes.models.fingerprint.fingerprint`),
the value results.json shows as ``model.sha256`` for the same file or folder run locally.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from audit.api.errors import ApiError
from audit.api.submission import project_dir
from audit.api.uploads import FIELD, check_request, receive_file
from audit.settings import Settings
from audit.storage.models import new_id
from audit.storage.objects import get_store, put_tree, remove

MODELS_FOLDER = "models"
# What a corrupt, encrypted or exotic archive raises while it is read.
_UNREADABLE = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,  # an encrypted zip entry
    NotImplementedError,  # a compression method zipfile does not know
)
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")
_SKIPPED_TOP = "__MACOSX"  # resource forks macOS adds to zips: not part of the model

MSG_NO_FILE = "file: required: a multipart part named 'file' holding a .skops file or an archive"
MSG_PICKLE = (
    "file: {reason}; unpickling runs code, so the service never loads one. Save a "
    "scikit-learn model with skops (.skops), a Hugging Face model as model.safetensors"
)
MSG_FORMAT = (
    "file: not a model this service accepts; send a .skops file, or a Hugging Face model "
    "folder as .zip, .tar, .tar.gz"
)
MSG_SKOPS_INVALID = "file: not a valid .skops file ({error})"
MSG_SKOPS_TYPES = (
    "file: the .skops file holds types outside the allowlist (scikit-learn, NumPy, SciPy, "
    "skops, builtins): {types}. Rebuild the model from standard scikit-learn components"
)
MSG_ENTRY_PATH = "file: archive entry {name!r} {why}; entries must be relative paths inside it"
MSG_ENTRY_TYPE = "file: archive entry {name!r} is a {what}; only files and folders are accepted"
MSG_ENTRY_CODE = (
    "file: archive entry {name!r} is Python code; biasaudit never runs code shipped with a "
    "model (no trust_remote_code). Remove the .py files"
)
MSG_ENTRY_PICKLE = (
    "file: archive entry {name!r} is pickle-based ({reason}); the service never unpickles "
    "uploaded weights. Upload model.safetensors instead"
)
MSG_TOO_MANY = "file: the archive has more than {limit} entries (BIASAUDIT_MAX_MODEL_FILES)"
MSG_TOO_BIG = (
    "file: unpacks to more than {limit} bytes (BIASAUDIT_MAX_MODEL_UNPACKED_BYTES); "
    "refused as a decompression bomb"
)
MSG_BAD_ARCHIVE = "file: unreadable archive ({error})"
MSG_FOLDER = "file: {error}"


@dataclass(frozen=True)
class StoredModel:
    """A checked model moved into place (the caller records it)."""

    model_id: str
    kind: str  # "sklearn" | "huggingface"
    key: str  # in the object store: <project>/models/<id>[.skops]
    address: str  # what the model row records: local path or s3://...
    sha256: str
    size_bytes: int
    filename: str | None
    files: int


@dataclass(frozen=True)
class _Entry:
    name: str
    kind: str  # "file" | "dir" | what else it is ("symlink", "hard link", ...)
    size: int
    open: Callable[[], IO[bytes]]


def _reject(status: int, message: str) -> ApiError:
    return ApiError(status, message, field=FIELD)


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[_Entry]:
    for info in zf.infolist():
        mode = (info.external_attr >> 16) & 0o170000
        kind = "dir" if info.is_dir() else "file"
        if mode == 0o120000:
            kind = "symlink"
        yield _Entry(info.filename, kind, info.file_size, partial(zf.open, info))


def _tar_entries(tf: tarfile.TarFile) -> Iterator[_Entry]:
    for member in tf:
        if member.isfile():
            kind = "file"
        elif member.isdir():
            kind = "dir"
        elif member.issym():
            kind = "symlink"
        elif member.islnk():
            kind = "hard link"
        else:
            kind = "device or special file"

        def opener(member: tarfile.TarInfo = member) -> IO[bytes]:
            handle = tf.extractfile(member)
            assert handle is not None  # a regular file always has one
            return handle

        yield _Entry(member.name, kind, member.size, opener)


def _safe_parts(name: str) -> tuple[str, ...]:
    """The path parts of an archive entry name; 422 for anything that could escape."""
    if "\x00" in name or "\\" in name:
        raise _reject(422, MSG_ENTRY_PATH.format(name=name[:200], why="has a NUL or backslash"))
    if name.startswith("/") or _DRIVE.match(name):
        raise _reject(422, MSG_ENTRY_PATH.format(name=name[:200], why="is an absolute path"))
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise _reject(422, MSG_ENTRY_PATH.format(name=name[:200], why="contains '..'"))
    return parts


def _check_entry(entry: _Entry, parts: tuple[str, ...]) -> None:
    from probes.models.safety import PICKLE_EXTENSIONS

    name = entry.name[:200]
    if entry.kind not in ("file", "dir"):
        raise _reject(422, MSG_ENTRY_TYPE.format(name=name, what=entry.kind))
    if entry.kind == "file":
        suffix = PurePosixPath(parts[-1]).suffix.lower()
        if suffix == ".py":
            raise _reject(422, MSG_ENTRY_CODE.format(name=name))
        if suffix in PICKLE_EXTENSIONS:
            reason = f"extension {suffix}"
            raise _reject(415, MSG_ENTRY_PICKLE.format(name=name, reason=reason))


def _copy(entry: _Entry, target: Path, budget: list[int], limit: int) -> None:
    """Write one entry, counting the bytes actually written against ``budget``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with entry.open() as src, open(target, "xb") as out:
        while chunk := src.read(_CHUNK):
            budget[0] += len(chunk)
            if budget[0] > limit:
                raise _reject(413, MSG_TOO_BIG.format(limit=limit))
            out.write(chunk)


def _unpack(entries: Iterator[_Entry], dest: Path, settings: Settings) -> int:
    """Check and write every entry under ``dest``; returns how many files were written."""
    budget = [0]
    count = files = 0
    for entry in entries:
        count += 1
        if count > settings.max_model_files:
            raise _reject(413, MSG_TOO_MANY.format(limit=settings.max_model_files))
        parts = _safe_parts(entry.name)
        if not parts or parts[0] == _SKIPPED_TOP:
            continue
        _check_entry(entry, parts)
        target = dest.joinpath(*parts)
        if entry.kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
            continue
        if entry.size > settings.max_model_unpacked_bytes:  # declared: refuse early
            raise _reject(413, MSG_TOO_BIG.format(limit=settings.max_model_unpacked_bytes))
        if target.exists():
            raise _reject(422, MSG_ENTRY_PATH.format(name=entry.name[:200], why="is repeated"))
        _copy(entry, target, budget, settings.max_model_unpacked_bytes)
        files += 1
    return files


def _model_root(dest: Path) -> Path:
    """The folder holding config.json: ``dest``, or its only subfolder (a zipped folder)."""
    if (dest / "config.json").is_file():
        return dest
    children = list(dest.iterdir())
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return dest


def _check_folder(root: Path) -> None:
    """The local-folder checks of ``biasaudit run``, plus a pickle sniff of every file."""
    from probes.models.hf_folder import check_model_folder
    from probes.models.safety import ModelLoadError, pickle_reason

    try:
        check_model_folder(root)
    except ModelLoadError as exc:  # name the archive's entries, never the server's folders
        message = str(exc).removeprefix("model.path: ")
        message = message.replace(str(root) + os.sep, "").replace(str(root), "the archive")
        raise _reject(422, MSG_FOLDER.format(error=message)) from None
    for path in sorted(root.rglob("*")):
        reason = pickle_reason(path) if path.is_file() else None
        if reason is not None:
            name = path.relative_to(root).as_posix()
            raise _reject(415, MSG_ENTRY_PICKLE.format(name=name, reason=reason))


def _zip_entries_declared(tmp: Path) -> int | None:
    """The entry count a zip's end record declares (None: not a zip), read before
    ``ZipFile`` parses the whole central directory (millions of entries cost minutes)."""
    with open(tmp, "rb") as fh:
        record = zipfile._EndRecData(fh)  # type: ignore[attr-defined]  # stable since 2.x
    return None if record is None else int(record[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]


def _open_archive(tmp: Path, settings: Settings) -> Any:
    declared = _zip_entries_declared(tmp)
    if declared is not None:
        if declared > settings.max_model_files:
            raise _reject(413, MSG_TOO_MANY.format(limit=settings.max_model_files))
        return zipfile.ZipFile(tmp)
    try:
        return tarfile.open(tmp, "r:*")
    except (tarfile.TarError, OSError, EOFError):
        return None


def check_skops(path: Path, settings: Settings) -> None:
    """Refuse a .skops file with types off the allowlist, or one that unpacks too large."""
    import skops.io as sio

    from probes.models.sklearn import allowed_type

    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    if len(infos) > settings.max_model_files:
        raise _reject(413, MSG_TOO_MANY.format(limit=settings.max_model_files))
    if sum(i.file_size for i in infos) > settings.max_model_unpacked_bytes:
        raise _reject(413, MSG_TOO_BIG.format(limit=settings.max_model_unpacked_bytes))
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - corrupt file: any skops/zip/json error
        raise _reject(422, MSG_SKOPS_INVALID.format(error=type(exc).__name__)) from None
    refused = sorted(t for t in untrusted if not allowed_type(t))
    if refused:
        raise _reject(422, MSG_SKOPS_TYPES.format(types=", ".join(refused[:20])))


def inspect_model(tmp: Path, unpack_dir: Path, settings: Settings) -> tuple[str, Path, int]:
    """``(kind, checked path, files)`` for the uploaded bytes in ``tmp``; :class:`ApiError`."""
    from probes.models.safety import pickle_reason

    reason = pickle_reason(tmp)
    if reason is not None:
        raise _reject(415, MSG_PICKLE.format(reason=f"this is a pickle ({reason})"))
    archive = None
    try:
        archive = _open_archive(tmp, settings)
        if archive is None:
            raise _reject(415, MSG_FORMAT)
        if isinstance(archive, zipfile.ZipFile) and "schema.json" in archive.namelist():
            archive.close()
            check_skops(tmp, settings)
            return "sklearn", tmp, 1
        entries = (
            _zip_entries(archive) if isinstance(archive, zipfile.ZipFile) else _tar_entries(archive)
        )
        unpack_dir.mkdir()
        files = _unpack(entries, unpack_dir, settings)
    except _UNREADABLE as exc:
        raise _reject(422, MSG_BAD_ARCHIVE.format(error=type(exc).__name__)) from None
    finally:
        if archive is not None:
            archive.close()
    root = _model_root(unpack_dir)
    _check_folder(root)
    return "huggingface", root, files


def store_model(settings: Settings, key: str, final: Path) -> str:
    """Put a checked model into the object store (a folder: one object per file); its
    address. The local store leaves it where it is."""
    store = get_store(settings)
    if final.is_dir():
        address = put_tree(store, key, final)
        if store.remote:
            shutil.rmtree(final, ignore_errors=True)
        return address
    return store.put_file(key, final)


def discard_model(settings: Settings, key: str) -> None:
    """Remove a stored model (file or folder) that will not be recorded."""
    remove(get_store(settings), key)


async def receive_model(request: Request, *, settings: Settings, project: str) -> StoredModel:
    """Stream, check and move an uploaded model into place; nothing is left behind on error."""
    from probes.models.fingerprint import fingerprint

    limit = settings.max_model_upload_bytes
    boundary = check_request(request, limit)
    folder = project_dir(settings, project)
    models = folder / MODELS_FOLDER
    await run_in_threadpool(models.mkdir, parents=True, exist_ok=True)
    model_id = new_id()
    tmp = folder / f".{model_id}.upload.tmp"
    unpack_dir = models / f".{model_id}.unpack.tmp"
    final: Path | None = None
    key = ""
    try:
        sink = await receive_file(request, boundary, tmp, limit, allowed=None, no_file=MSG_NO_FILE)
        kind, checked, files = await run_in_threadpool(inspect_model, tmp, unpack_dir, settings)
        name = f"{model_id}.skops" if kind == "sklearn" else model_id
        key = f"{project}/{MODELS_FOLDER}/{name}"
        await run_in_threadpool(os.replace, checked, models / name)
        final = models / name
        sha256 = await run_in_threadpool(fingerprint, final)
        address = await run_in_threadpool(store_model, settings, key, final)
    except BaseException:
        if final is not None:  # checked, then lost (cancelled, store down): remove it
            await run_in_threadpool(discard_model, settings, key)
        raise
    finally:
        tmp.unlink(missing_ok=True)
        await run_in_threadpool(shutil.rmtree, unpack_dir, True)
    return StoredModel(
        model_id=model_id,
        kind=kind,
        key=key,
        address=address,
        sha256=sha256,
        size_bytes=sink.size,
        filename=sink.filename,
        files=files,
    )
