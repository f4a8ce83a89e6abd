"""Streamed dataset uploads: multipart ``file`` -> temp file -> checks -> atomic rename.

The request body is parsed as it arrives (python-multipart's push parser):
the ``file`` part goes to a temp file in the project's data folder in
chunks, its SHA-256 and size are computed on the way, and the upload stops
with ``413`` as soon as it passes ``BIASAUDIT_MAX_UPLOAD_BYTES`` (a
``Content-Length`` above the limit is refused before reading anything).
Nothing is held whole in memory.

Then :func:`audit.api.sniff.sniff_upload` decides from the bytes what the
file is (``415`` unless CSV / gzip / zip / Parquet), counts rows (``413``
above ``BIASAUDIT_MAX_UPLOAD_ROWS``) and decompressed bytes (``413`` above
``BIASAUDIT_MAX_DECOMPRESSED_BYTES``). Only a file that passes is put into
the object store (:mod:`audit.storage.objects`) as ``<project>/<dataset_id><ext>``:
renamed into ``data_dir`` by default, uploaded to ``BIASAUDIT_STORAGE_URL`` when
set. The temp file is deleted on every failure, so no half-written dataset is
ever visible.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from audit.api.errors import ApiError
from audit.api.sniff import Limits, Sniffed, SniffStopped, UploadRejected, sniff_upload
from audit.api.submission import project_dir
from audit.settings import Settings
from audit.storage.models import new_id
from audit.storage.objects import get_store, put_pinned

FIELD = "file"
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file
# Declared part types that can be a CSV or Parquet file; anything else is 415.
ALLOWED_PART_TYPES = frozenset(
    {
        "",
        "application/octet-stream",
        "text/csv",
        "text/plain",
        "application/csv",
        "application/vnd.ms-excel",  # what browsers send for .csv on Windows
        "application/gzip",
        "application/x-gzip",
        "application/zip",
        "application/x-zip-compressed",
        "application/vnd.apache.parquet",
        "application/x-parquet",
        "application/parquet",
    }
)
STALE_UPLOAD_SECONDS = 6 * 3600.0
UNPACK_GLOB = "*/models/.*.unpack.tmp"  # model archives being unpacked (audit.api.model_upload)
MSG_GONE = "file: the client disconnected before the upload was checked; nothing was stored"
_CALLBACKS = (
    "on_part_begin",
    "on_header_field",
    "on_header_value",
    "on_header_end",
    "on_headers_finished",
    "on_part_data",
    "on_part_end",
)
MSG_NOT_MULTIPART = "send multipart/form-data with the dataset in a part named 'file'"
MSG_TOO_LARGE = "file: larger than {limit} bytes; the limit is BIASAUDIT_MAX_UPLOAD_BYTES={limit}"
MSG_NO_FILE = "file: required: a multipart part named 'file' holding the CSV or Parquet file"
MSG_PART_TYPE = (
    "file: declared content type {ctype!r} is not a dataset; send text/csv, "
    "application/vnd.apache.parquet (or application/octet-stream)"
)


@dataclass
class StoredUpload:
    """A checked upload, in its final place in the object store (the caller records it).

    ``address`` is what the dataset row records: the local path, or ``s3://...``."""

    dataset_id: str
    key: str
    address: str
    sha256: str
    size_bytes: int
    filename: str | None
    sniffed: Sniffed
    etag: str | None = None  # the stored version (remote stores): ranged reads pin it


@dataclass
class _Sink:
    """python-multipart callbacks: collect the ``file`` part's bytes; skip other parts."""

    limit: int
    allowed: frozenset[str] | None = ALLOWED_PART_TYPES  # None: any declared type
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, str] = field(default_factory=dict)
    in_file: bool = False
    seen_file: bool = False
    filename: str | None = None
    content_type: str = ""
    pending: list[bytes] = field(default_factory=list)
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)

    def on_part_begin(self) -> None:
        self.headers = {}
        self.in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        name = bytes(self.header_field).decode("latin-1").lower()
        self.headers[name] = bytes(self.header_value).decode("latin-1")
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name != FIELD or self.seen_file:
            return
        self.in_file = self.seen_file = True
        raw_name = options.get(b"filename")
        self.filename = raw_name.decode("utf-8", "replace")[:255] if raw_name else None
        ctype, _ = parse_options_header(self.headers.get("content-type", ""))
        self.content_type = ctype.decode("latin-1").lower()
        if self.allowed is not None and self.content_type not in self.allowed:
            raise ApiError(415, MSG_PART_TYPE.format(ctype=self.content_type), field=FIELD)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self.in_file:
            return
        self.size += end - start
        if self.size > self.limit:
            raise ApiError(413, MSG_TOO_LARGE.format(limit=self.limit), field=FIELD)
        self.pending.append(data[start:end])

    def on_part_end(self) -> None:
        self.in_file = False


def dataset_key(project: str, dataset_id: str, extension: str) -> str:
    """Where a project's dataset lives in the object store: ``<project>/<id><ext>``."""
    return f"{project}/{dataset_id}{extension}"


def check_request(request: Request, limit: int) -> bytes:
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype.lower() != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(415, MSG_NOT_MULTIPART, field=FIELD)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise ApiError(413, MSG_TOO_LARGE.format(limit=limit), field=FIELD)
    return bytes(params[b"boundary"])


def _write(f: object, chunks: list[bytes]) -> None:
    f.write(b"".join(chunks))  # type: ignore[attr-defined]


def remove_stale_uploads(settings: Settings, *, older_than: float = STALE_UPLOAD_SECONDS) -> int:
    """Delete upload temporary files older than ``older_than`` seconds; returns how many.

    Model archives unpacked into ``models/.<id>.unpack.tmp`` folders count too.
    Every exit path of a request removes its own file; only a process killed outright
    (SIGKILL, power loss) leaves one, which the next ``serve`` start removes here. No
    upload in progress is that old: body and check timeouts bound it.
    """
    removed = 0
    cutoff = time.time() - older_than
    stale = [*settings.data_path.glob("*/.*.upload.tmp"), *settings.data_path.glob(UNPACK_GLOB)]
    for tmp in stale:
        try:
            if tmp.stat().st_mtime < cutoff:
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
                removed += 1
        except OSError:  # removed by someone else meanwhile
            continue
    return removed


async def _sniff(request: Request, tmp: Path, limits: Limits) -> Sniffed:
    """:func:`sniff_upload` in a thread that stops as soon as nobody waits for it.

    The check watches for the client leaving; when it leaves, or the request is
    cancelled (server shutdown), the thread's ``stop`` event is set and the check
    ends at its next step, so no work outlives its request and SIGTERM is not held up.
    """
    stop = threading.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        stop.set()

    watcher = asyncio.ensure_future(watch())
    try:
        work = partial(sniff_upload, tmp, limits=limits, stop=stop)
        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    except UploadRejected as exc:
        raise ApiError(exc.status_code, exc.detail, field=FIELD) from None
    except SniffStopped:
        raise ApiError(400, MSG_GONE, field=FIELD) from None
    finally:
        stop.set()
        watcher.cancel()


async def receive_file(
    request: Request,
    boundary: bytes,
    tmp: Path,
    limit: int,
    *,
    allowed: frozenset[str] | None = ALLOWED_PART_TYPES,
    no_file: str = MSG_NO_FILE,
) -> _Sink:
    """Stream the body's ``file`` part into ``tmp`` (413/422 on the way); the sink holds
    its size, name, type and SHA-256. Shared with model uploads (:mod:`audit.api.model_upload`)."""
    sink = _Sink(limit=limit, allowed=allowed)
    callbacks = {name: getattr(sink, name) for name in _CALLBACKS}
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    total = 0
    with open(tmp, "xb") as out:
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit + MULTIPART_OVERHEAD and not sink.in_file:
                    raise ApiError(413, MSG_TOO_LARGE.format(limit=limit), field=FIELD)
                try:
                    parser.write(chunk)
                except FormParserError as exc:
                    raise ApiError(422, f"malformed multipart body: {exc}", field=FIELD) from None
                if sink.pending:
                    for piece in sink.pending:
                        sink.digest.update(piece)
                    await run_in_threadpool(_write, out, sink.pending)
                    sink.pending = []
        except ClientDisconnect:
            raise ApiError(400, MSG_GONE, field=FIELD) from None
        parser.finalize()
        out.flush()
        os.fsync(out.fileno())
    if not sink.seen_file:
        raise ApiError(422, no_file, field=FIELD)
    return sink


async def receive_upload(request: Request, *, settings: Settings, project: str) -> StoredUpload:
    """Stream the request's ``file`` part to disk, check it, and move it into place.

    Raises :class:`ApiError` (400, 413, 415, 422) and leaves nothing behind on any
    exit: error, client gone, or cancellation.
    """
    limit = settings.max_upload_bytes
    boundary = check_request(request, limit)
    folder = project_dir(settings, project)
    await run_in_threadpool(folder.mkdir, parents=True, exist_ok=True)
    dataset_id = new_id()
    tmp = folder / f".{dataset_id}.upload.tmp"
    try:
        sink = await receive_file(request, boundary, tmp, limit)
        sniffed = await _sniff(request, tmp, Limits.from_settings(settings))
        key = dataset_key(project, dataset_id, sniffed.extension)
        address, etag = await run_in_threadpool(put_pinned, get_store(settings), key, tmp)
    finally:
        tmp.unlink(missing_ok=True)
    return StoredUpload(
        dataset_id=dataset_id,
        key=key,
        address=address,
        sha256=sink.digest.hexdigest(),
        size_bytes=sink.size,
        filename=sink.filename,
        sniffed=sniffed,
        etag=etag,
    )
