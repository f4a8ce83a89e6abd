"""Direct uploads: the client PUTs a dataset to the object store, the API only checks it.

``POST /v1/datasets/uploads`` answers a presigned PUT URL for the object
``.uploads/<project>/<upload id>`` (the project comes from the token, so one
project can never name another's upload), and a presigned form POST (``post``) to
the same key whose signed policy limits the body to 1 byte .. the declared
``size_bytes`` (else ``BIASAUDIT_MAX_UPLOAD_BYTES``) with ``content-length-range``,
so that a store which checks policies (AWS S3, MinIO) refuses a larger body itself;
a PUT URL cannot carry that limit. The client PUTs (or POSTs) the file there; its
bytes never pass through the API process. ``POST
/v1/datasets/uploads/{id}/complete`` with the file's SHA-256 then verifies the
object exactly as a direct upload is verified:

1. size: at most ``BIASAUDIT_MAX_UPLOAD_BYTES`` (``413``);
2. SHA-256, streamed from the store, equal to the declared one (``422`` naming
   ``sha256``): a tampered or truncated upload is never registered;
3. :func:`audit.api.sniff.sniff_upload`: CSV/Parquet, rows, columns, bombs
   (``413``/``415``/``422`` naming ``file``).

Only then is the object copied (server side, pinned to the ETag that was read,
so a PUT racing the check cannot slip in) to ``<project>/<dataset id><ext>`` and
the dataset recorded. The upload object is deleted whatever the outcome.
Abandoned uploads (never completed) are best expired by a bucket lifecycle rule
on ``PREFIX/.uploads/`` (docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from audit.api.errors import ApiError
from audit.api.sniff import Limits, UploadRejected, sniff_upload
from audit.api.submission import project_dir
from audit.api.uploads import MSG_TOO_LARGE, StoredUpload, dataset_key
from audit.settings import Settings
from audit.storage.models import new_id
from audit.storage.objects import ObjectMissing, ObjectStore, get_store

UPLOADS = ".uploads"
MSG_LOCAL_ONLY = (
    "uploads: direct uploads need an object store (BIASAUDIT_STORAGE_URL=s3://...); "
    "this server keeps datasets in a local folder: send the file to POST /v1/datasets"
)
MSG_NO_UPLOAD = (
    "upload_id: no uploaded object for upload {id!r} in this project (never PUT, "
    "already completed, or refused); start again with POST /v1/datasets/uploads"
)
MSG_SHA256 = (
    "sha256: the uploaded object's SHA-256 is {actual}, not the declared {declared}; "
    "it was changed or truncated on the way. Nothing was stored; upload it again"
)
MSG_RACED = (
    "upload_id: the object of upload {id!r} was replaced while it was checked; "
    "nothing was stored; upload it again"
)
MSG_SIZE = "size_bytes: {size} is larger than the limit BIASAUDIT_MAX_UPLOAD_BYTES={limit}"


@dataclass(frozen=True)
class Presigned:
    upload_id: str
    url: str
    expires_at: datetime
    post: dict[str, Any] | None = None


def upload_key(project: str, upload_id: str) -> str:
    """``.uploads/<project>/<id>``: one lifecycle rule on ``.uploads/`` expires them all."""
    return f"{UPLOADS}/{project}/{upload_id}"


def _remote_store(settings: Settings) -> ObjectStore:
    store = get_store(settings)
    if not store.remote:
        raise ApiError(409, MSG_LOCAL_ONLY, field="uploads")
    return store


def start_upload(*, settings: Settings, project: str, size_bytes: int | None) -> Presigned:
    """A new upload id and the presigned URL to PUT its bytes to."""
    store = _remote_store(settings)
    if size_bytes is not None and size_bytes > settings.max_upload_bytes:
        msg = MSG_SIZE.format(size=size_bytes, limit=settings.max_upload_bytes)
        raise ApiError(413, msg, field="size_bytes")
    upload_id = new_id()
    seconds = settings.storage_upload_seconds
    key = upload_key(project, upload_id)
    url = store.presigned_put(key, seconds=seconds)
    assert url is not None  # a remote store always signs
    # the form upload carries the size limit in its signed policy: the store refuses more
    limit = min(settings.max_upload_bytes, size_bytes or settings.max_upload_bytes)
    post = store.presigned_post(key, seconds=seconds, max_bytes=limit)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return Presigned(upload_id=upload_id, url=url, expires_at=expires, post=post)


def _upload_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ApiError(404, MSG_NO_UPLOAD.format(id=raw[:64]), field="upload_id") from None


def complete_upload(
    *, settings: Settings, project: str, upload_id: str, sha256: str, filename: str | None
) -> StoredUpload:
    """Verify the PUT object (size, SHA-256, type) and move it to its dataset key.

    Runs in a worker thread. Raises :class:`ApiError` (404, 409, 413, 415, 422);
    the upload object is gone afterwards in every case but an unknown id.
    """
    store = _remote_store(settings)
    upload_id = _upload_id(upload_id)
    key = upload_key(project, upload_id)
    try:
        info = store.head(key)
    except ObjectMissing:
        raise ApiError(404, MSG_NO_UPLOAD.format(id=upload_id), field="upload_id") from None
    try:
        return _verify(settings, store, key, info, sha256.lower(), upload_id, filename)
    finally:
        store.delete(key)


def _verify(
    settings: Settings,
    store: ObjectStore,
    key: str,
    info: Any,
    declared: str,
    upload_id: str,
    filename: str | None,
) -> StoredUpload:
    from botocore.exceptions import ClientError

    limit = settings.max_upload_bytes
    if info.size > limit:
        raise ApiError(413, MSG_TOO_LARGE.format(limit=limit), field="file")
    project = key.split("/")[1]
    folder = project_dir(settings, project)
    folder.mkdir(parents=True, exist_ok=True)
    dataset_id = new_id()
    tmp = folder / f".{dataset_id}.upload.tmp"
    digest = hashlib.sha256()
    try:
        with open(tmp, "xb") as out:
            for block in store.iter_bytes(key, etag=info.etag):
                digest.update(block)
                out.write(block)
        actual = digest.hexdigest()
        if actual != declared:
            msg = MSG_SHA256.format(actual=actual, declared=declared)
            raise ApiError(422, msg, field="sha256")
        try:
            sniffed = sniff_upload(tmp, limits=Limits.from_settings(settings))
        except UploadRejected as exc:
            raise ApiError(exc.status_code, exc.detail, field="file") from None
        final = dataset_key(project, dataset_id, sniffed.extension)
        address = store.copy(key, final, etag=info.etag)
        etag = store.head(final).etag  # the version ranged reads will be pinned to
    except (ObjectMissing, ClientError) as exc:
        if isinstance(exc, ClientError) and "PreconditionFailed" not in str(exc):
            raise
        raise ApiError(409, MSG_RACED.format(id=upload_id), field="upload_id") from None
    finally:
        tmp.unlink(missing_ok=True)
    return StoredUpload(
        dataset_id=dataset_id,
        key=final,
        address=address,
        sha256=actual,
        size_bytes=info.size,
        filename=filename,
        sniffed=sniffed,
        etag=etag,
    )
