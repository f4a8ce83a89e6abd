"""What an uploaded file really is, decided from its bytes: CSV (plain, gzip, zip) or Parquet.

The client's Content-Type and file name are not trusted. The checks:

- Parquet: ``PAR1`` at both ends; rows and columns from the footer; the
  uncompressed size the footer declares must stay under the decompressed
  limit (pyarrow refuses pages that decompress to more than declared).
- gzip / zip (one CSV member): decompressed *while counting*, stopping as
  soon as the output passes ``max_decompressed`` (a zip's declared sizes are
  checked first, but not believed).
- CSV: UTF-8 text without NUL bytes, parsed with :mod:`csv` to count rows
  (quoted newlines handled; blank lines skipped, as pandas does) and read the
  header; the row limit stops the count early.

Everything else is ``415``; over a limit ``413``; a CSV that cannot be read
``422``. Each error names the ``file`` field.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEAD_BYTES = 64 * 1024
_READ = 1 << 20
MSG_UNSUPPORTED = (
    "file: {what}; upload a CSV file (UTF-8 text, optionally .gz or a .zip holding one CSV) "
    "or a Parquet file"
)
MSG_TOO_MANY_ROWS = "file: more than {limit} rows; the limit is BIASAUDIT_MAX_UPLOAD_ROWS={limit}"
MSG_BOMB = (
    "file: decompresses to more than {limit} bytes (decompression bomb?); the limit is "
    "BIASAUDIT_MAX_DECOMPRESSED_BYTES={limit}"
)
_OTHER_MAGIC = {
    b"BZh": "bzip2-compressed data is not supported",
    b"\xfd7zXZ\x00": "xz-compressed data is not supported",
    b"\x28\xb5\x2f\xfd": "zstd-compressed data is not supported",
    b"%PDF": "this is a PDF document",
    b"\x89PNG": "this is a PNG image",
    b"\xff\xd8\xff": "this is a JPEG image",
    b"\x80": "this looks like a pickle stream",
    b"\xd0\xcf\x11\xe0": "this is a legacy Office document",
    b"ARROW1": "this is an Arrow IPC file",
}


# Long text fields (resumes, notes) are legitimate; csv's default cap is 128 KiB.
csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))


class UploadRejected(Exception):
    """An upload refused with an HTTP status (413, 415, 422) and a message naming ``file``."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class Sniffed:
    """The real format of an upload, the extension to store it under, and its shape."""

    format: str  # "csv" | "parquet"
    compression: str | None  # None | "gzip" | "zip"
    extension: str  # ".csv", ".csv.gz", ".csv.zip", ".parquet"
    rows: int
    columns: list[str]


class _Counting(io.RawIOBase):
    """A read-only stream that raises once more than ``limit`` bytes have come out of it."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(min(len(buffer), _READ))
        n = len(data)
        self.count += n
        if self.count > self._limit:
            raise UploadRejected(413, MSG_BOMB.format(limit=self._limit))
        buffer[:n] = data
        return n


def _unsupported(what: str) -> UploadRejected:
    return UploadRejected(415, MSG_UNSUPPORTED.format(what=what))


def _check_text_head(head: bytes, *, where: str) -> None:
    """Refuse binary content: NUL bytes, or bytes that are not UTF-8."""
    if not head.strip():
        raise UploadRejected(422, f"file: {where} is empty; a CSV needs a header row")
    if b"\x00" in head:
        raise _unsupported(f"{where} is binary, not CSV text (it contains NUL bytes)")
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        raise _unsupported(f"{where} is not UTF-8 text") from None


def _count_csv(raw: Any, *, max_rows: int, where: str) -> tuple[int, list[str]]:
    with io.TextIOWrapper(io.BufferedReader(raw, _READ), encoding="utf-8-sig", newline="") as text:
        return _count_rows(csv.reader(text), max_rows=max_rows, where=where)


def _count_rows(reader: Any, *, max_rows: int, where: str) -> tuple[int, list[str]]:
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise UploadRejected(422, f"file: {where} has no header row")
        columns = [h.strip() for h in header]
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise UploadRejected(422, f"file: duplicate column names: {', '.join(dupes)}")
        rows = 0
        for record in reader:
            if record:
                rows += 1
                if rows > max_rows:
                    raise UploadRejected(413, MSG_TOO_MANY_ROWS.format(limit=max_rows))
    except UnicodeDecodeError:
        raise _unsupported(f"{where} is not UTF-8 text") from None
    except csv.Error as exc:
        if "NUL" in str(exc):
            raise _unsupported(f"{where} is binary, not CSV text") from None
        raise UploadRejected(
            422, f"file: {where} is not valid CSV at line {reader.line_num}: {exc}"
        ) from None
    if rows == 0:
        raise UploadRejected(422, f"file: {where} has a header but no data rows")
    return rows, columns


def _decompressed_head(stream: Any) -> bytes:
    try:
        return stream.read(HEAD_BYTES)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise _unsupported(f"the compressed data is corrupt ({exc})") from None


def _sniff_gzip(path: Path, *, max_rows: int, max_decompressed: int) -> Sniffed:
    with gzip.open(path, "rb") as probe:
        _check_text_head(_decompressed_head(probe), where="the gzip member")
    with open(path, "rb") as f, gzip.GzipFile(fileobj=f, mode="rb") as gz:
        try:
            counting = _Counting(gz, max_decompressed)
            rows, columns = _count_csv(counting, max_rows=max_rows, where="the gzip member")
        except (OSError, EOFError, zlib.error) as exc:
            raise _unsupported(f"the gzip data is corrupt ({exc})") from None
    return Sniffed("csv", "gzip", ".csv.gz", rows, columns)


def _sniff_zip(path: Path, *, max_rows: int, max_decompressed: int) -> Sniffed:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _unsupported(f"not a readable zip archive ({exc})") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise _unsupported(f"the zip archive holds {len(members)} files, not exactly one CSV")
        member = members[0]
        if member.file_size > max_decompressed:
            raise UploadRejected(413, MSG_BOMB.format(limit=max_decompressed))
        where = f"zip member {member.filename!r}"
        try:
            with archive.open(member) as probe:
                _check_text_head(_decompressed_head(probe), where=where)
            with archive.open(member) as inner:
                counting = _Counting(inner, max_decompressed)
                rows, columns = _count_csv(counting, max_rows=max_rows, where=where)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise _unsupported(f"the zip data is corrupt or unsupported ({exc})") from None
        except RuntimeError as exc:  # encrypted member
            raise _unsupported(f"the zip member cannot be read ({exc})") from None
    return Sniffed("csv", "zip", ".csv.zip", rows, columns)


def _sniff_parquet(path: Path, *, max_rows: int, max_decompressed: int) -> Sniffed:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(path, "rb") as f:
        f.seek(-4, io.SEEK_END)
        if f.read(4) != b"PAR1":
            raise _unsupported("the Parquet file is truncated (no PAR1 footer)")
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as exc:
        raise UploadRejected(422, f"file: cannot read the Parquet footer: {exc}") from None
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if uncompressed > max_decompressed:
        raise UploadRejected(413, MSG_BOMB.format(limit=max_decompressed))
    if meta.num_rows > max_rows:
        raise UploadRejected(413, MSG_TOO_MANY_ROWS.format(limit=max_rows))
    if meta.num_rows == 0:
        raise UploadRejected(422, "file: the Parquet file has no rows")
    columns = list(meta.schema.to_arrow_schema().names)
    return Sniffed("parquet", None, ".parquet", int(meta.num_rows), columns)


def sniff_upload(path: Path, *, max_rows: int, max_decompressed: int) -> Sniffed:
    """Decide what ``path`` holds and measure it; raise :class:`UploadRejected` if unusable."""
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if head.startswith(b"PAR1"):
        return _sniff_parquet(path, max_rows=max_rows, max_decompressed=max_decompressed)
    if head.startswith(b"\x1f\x8b"):
        return _sniff_gzip(path, max_rows=max_rows, max_decompressed=max_decompressed)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _sniff_zip(path, max_rows=max_rows, max_decompressed=max_decompressed)
    for magic, what in _OTHER_MAGIC.items():
        if head.startswith(magic):
            raise _unsupported(what)
    _check_text_head(head, where="the file")
    with open(path, "rb", buffering=0) as f:
        rows, columns = _count_csv(f, max_rows=max_rows, where="the file")
    return Sniffed("csv", None, ".csv", rows, columns)
