"""The S3-compatible implementation of :class:`audit.storage.objects.ObjectStore` (boto3).

Keys live under ``s3://bucket/prefix``. Reads of a verified version pin its ETag
(``IfMatch``, ``CopySourceIfMatch``), so an object replaced meanwhile is noticed,
never mixed up. boto3 is imported here only, when a store is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audit.storage.objects import (
    READ_BLOCK,
    SCHEME,
    ObjectInfo,
    ObjectMissing,
    ObjectReplaced,
    check_key,
)


class S3Store:
    """Keys are objects under ``s3://bucket/prefix`` of an S3-compatible service."""

    remote = True
    COPY_LIMIT = 5 * 1024**3  # larger objects: managed (multipart) copy

    def __init__(self, bucket: str, prefix: str, client: Any, signer: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.signer = signer or client  # presigns for the endpoint clients see

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def address(self, key: str) -> str:
        return f"{SCHEME}{self.bucket}/{self._name(key)}"

    def key_of(self, address: str) -> str | None:
        head = f"{SCHEME}{self.bucket}/{self.prefix + '/' if self.prefix else ''}"
        return address[len(head) :] if address.startswith(head) else None

    def put_file(self, key: str, source: Path) -> str:
        self.client.upload_file(str(source), self.bucket, self._name(key))
        source.unlink(missing_ok=True)
        return self.address(key)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> str:
        self.client.put_object(
            Bucket=self.bucket, Key=self._name(key), Body=data, ContentType=content_type
        )
        return self.address(key)

    def head(self, key: str) -> ObjectInfo:
        from botocore.exceptions import ClientError

        try:
            meta = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as exc:
            if _status(exc) == 404:
                raise ObjectMissing(key) from None
            raise
        return ObjectInfo(size=int(meta["ContentLength"]), etag=str(meta["ETag"]))

    def iter_bytes(self, key: str, *, etag: str | None = None) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        extra = {"IfMatch": etag} if etag else {}
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._name(key), **extra)["Body"]
        except ClientError as exc:
            if _status(exc) in (404, 412):  # gone, or replaced since the HEAD
                raise ObjectMissing(key) from None
            raise
        try:
            yield from body.iter_chunks(READ_BLOCK)
        finally:
            body.close()

    def read_range(self, key: str, start: int, stop: int, *, etag: str | None = None) -> bytes:
        """Bytes ``[start, stop)``; with ``etag``, only of that version (``If-Match``)."""
        from botocore.exceptions import ClientError

        if stop <= start:
            return b""
        extra = {"IfMatch": etag} if etag else {}
        try:
            reply = self.client.get_object(
                Bucket=self.bucket, Key=self._name(key), Range=f"bytes={start}-{stop - 1}", **extra
            )
        except ClientError as exc:
            status = _status(exc)
            if status == 404:
                raise ObjectMissing(key) from None
            if status == 412:  # replaced since the registration recorded its ETag
                raise ObjectReplaced(key) from None
            raise
        body = reply["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def copy(self, source: str, target: str, *, etag: str | None = None) -> str:
        src = {"Bucket": self.bucket, "Key": self._name(source)}
        if etag is not None and self.head(source).size <= self.COPY_LIMIT:
            self.client.copy_object(
                Bucket=self.bucket, Key=self._name(target), CopySource=src, CopySourceIfMatch=etag
            )
        else:
            self.client.copy(src, self.bucket, self._name(target))
        return self.address(target)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))

    def list(self, key: str) -> list[str]:
        """The keys under ``key/`` (a stored folder), sorted."""
        name = self._name(key) + "/"
        cut = len(name) - len(key) - 1
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=name
        )
        found = [item["Key"][cut:] for page in pages for item in page.get("Contents", [])]
        return sorted(found)

    def presigned_put(self, key: str, *, seconds: int) -> str | None:
        return str(
            self.signer.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": self._name(key)},
                ExpiresIn=seconds,
            )
        )

    def presigned_post(self, key: str, *, seconds: int, max_bytes: int) -> dict[str, Any] | None:
        """A browser-style form upload (``url`` + ``fields``) whose signed policy has a
        ``content-length-range`` of 1 to ``max_bytes``: the store itself refuses a larger
        body (AWS S3, MinIO; moto does not check policies). ``complete`` still checks."""
        form = self.signer.generate_presigned_post(
            Bucket=self.bucket,
            Key=self._name(key),
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=seconds,
        )
        return {"url": str(form["url"]), "fields": dict(form["fields"])}


def _status(exc: Any) -> int:
    meta = exc.response.get("ResponseMetadata", {})
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in ("NoSuchKey", "NotFound", "404"):
        return 404
    if code == "PreconditionFailed":
        return 412
    return int(meta.get("HTTPStatusCode", 0))


def s3_client(settings: Any, *, public: bool = False) -> Any:
    """A boto3 S3 client from ``BIASAUDIT_STORAGE_*`` (path-style for a custom endpoint);
    ``public``: for the endpoint clients see (``storage_public_endpoint_url``)."""
    import boto3
    from botocore.config import Config

    secret = settings.storage_secret_access_key
    endpoint = settings.storage_endpoint_url
    if public and settings.storage_public_endpoint_url:
        endpoint = settings.storage_public_endpoint_url
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=settings.storage_region,
        aws_access_key_id=settings.storage_access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret is not None else None,
        config=config,
    )
