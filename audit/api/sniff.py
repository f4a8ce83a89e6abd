"""What an uploaded file really is, decided from its bytes: CSV (plain, gzip, zip) or Parquet.

The client's Content-Type and file name are not trusted. The checks:

- Parquet: ``PAR1`` at both ends; rows and columns from the footer; the
  uncompressed size the footer declares must stay under the decompressed
  limit (pyarrow refuses pages that decompress to more than declared).
- gzip / zip (one CSV member): decompressed *while counting*, stopping as
  soon as the output passes ``max_decompressed`` (a zip's declared sizes are
  checked first, but not believed).
- CSV: UTF-8 text without NUL bytes and not a pickle stream (a protocol-0
  pickle is text that also parses as CSV: :mod:`audit.api.pickles`), whose
  header line fits ``BIASAUDIT_MAX_CSV_HEADER_BYTES`` and names at most
  ``BIASAUDIT_MAX_COLUMNS`` distinct columns (checked in linear time), parsed
  with :mod:`csv` to count rows (quoted newlines handled; blank lines skipped,
  as pandas does) and each column's distinct values (:mod:`audit.api.levels`);
  the row limit stops the count early.

The whole check runs within ``BIASAUDIT_SNIFF_TIMEOUT`` seconds and stops
early when the caller sets ``stop`` (the client left, the server shuts down):
it never outlives its request. Everything else is ``415``; over a limit
``413``; a CSV that cannot be read ``422``. Each error names the ``file`` field.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import threading
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from audit.api.levels import LevelCounter, parquet_levels
from audit.api.pickles import pickle_reason

HEAD_BYTES = 64 * 1024
BLOCK_ROWS = 8192  # rows between two level-count updates and deadline checks
_READ = 1 << 20
MSG_UNSUPPORTED = (
    "file: {what}; upload a CSV file (UTF-8 text, optionally .gz or a .zip holding one CSV) "
    "or a Parquet file"
)
MSG_TOO_MANY_ROWS = "file: more than {limit} rows; the limit is BIASAUDIT_MAX_UPLOAD_ROWS={limit}"
MSG_TOO_MANY_COLUMNS = "file: {count} columns, more than the limit BIASAUDIT_MAX_COLUMNS={limit}"
MSG_LONG_HEADER = (
    "file: the header line of {where} is longer than {limit} bytes; the limit is "
    "BIASAUDIT_MAX_CSV_HEADER_BYTES={limit}"
)
MSG_DUPLICATES = "file: duplicate column names: {names}"
MSG_PICKLE = (
    "{where} is {reason}; pickle data runs code when it is loaded and is never accepted "
    "as a dataset"
)
MSG_TOO_SLOW = (
    "file: checking the upload took longer than {seconds:g} s; the limit is "
    "BIASAUDIT_SNIFF_TIMEOUT={seconds:g}"
)
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
    b"\x80": "this is a pickle stream",
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


class SniffStopped(Exception):
    """The caller stopped the check (its ``stop`` event was set): nobody waits for the answer."""


@dataclass(frozen=True)
class Limits:
    """What an upload may be: rows, decompressed bytes, columns, header bytes, seconds."""

    max_rows: int
    max_decompressed: int
    max_columns: int = 2_000
    max_header_bytes: int = 1024 * 1024
    seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            max_rows=settings.max_upload_rows,
            max_decompressed=settings.max_decompressed_bytes,
            max_columns=settings.max_columns,
            max_header_bytes=settings.max_csv_header_bytes,
            seconds=settings.sniff_timeout,
        )


class Budget:
    """Called between steps of a check: raises once the time is up or the caller stopped it."""

    def __init__(self, seconds: float, stop: threading.Event | None = None) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.stop = stop

    def __call__(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise SniffStopped
        if time.monotonic() > self.deadline:
            raise UploadRejected(413, MSG_TOO_SLOW.format(seconds=self.seconds))


@dataclass(frozen=True)
class Sniffed:
    """The real format of an upload, the extension to store it under, and its shape."""

    format: str  # "csv" | "parquet"
    compression: str | None  # None | "gzip" | "zip"
    extension: str  # ".csv", ".csv.gz", ".csv.zip", ".parquet"
    rows: int
    columns: list[str]
    levels: dict[str, int] = field(default_factory=dict)  # distinct values (capped)


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


def _check_text_head(head: bytes, *, where: str, limits: Limits) -> None:
    """Refuse binary content (NUL bytes, not UTF-8) and a header line over the byte limit."""
    if not head.strip():
        raise UploadRejected(422, f"file: {where} is empty; a CSV needs a header row")
    if b"\x00" in head:
        raise _unsupported(f"{where} is binary, not CSV text (it contains NUL bytes)")
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        raise _unsupported(f"{where} is not UTF-8 text") from None
    if len(head) > limits.max_header_bytes and b"\n" not in head[: limits.max_header_bytes + 1]:
        raise UploadRejected(
            413, MSG_LONG_HEADER.format(where=where, limit=limits.max_header_bytes)
        )


def _header(reader: Any, *, where: str, limits: Limits) -> list[str]:
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise UploadRejected(422, f"file: {where} has no header row")
    if len(header) > limits.max_columns:
        raise UploadRejected(
            413, MSG_TOO_MANY_COLUMNS.format(count=len(header), limit=limits.max_columns)
        )
    columns = [h.strip() for h in header]
    _no_duplicates(columns)
    return columns


def _no_duplicates(columns: list[str]) -> None:
    dupes = sorted(name for name, n in Counter(columns).items() if n > 1)  # linear
    if dupes:
        shown = ", ".join(dupes[:20]) + (
            f" (and {len(dupes) - 20} more)" if len(dupes) > 20 else ""
        )
        raise UploadRejected(422, MSG_DUPLICATES.format(names=shown))


def _count_rows(
    reader: Any, *, where: str, limits: Limits, budget: Budget
) -> tuple[int, list[str], dict[str, int]]:
    try:
        columns = _header(reader, where=where, limits=limits)
        levels = LevelCounter(columns)
        rows = 0
        block: list[list[str]] = []
        for record in reader:
            if record:
                block.append(record)
                if len(block) >= BLOCK_ROWS:
                    rows = _add_block(levels, block, rows, limits.max_rows)
                    block = []
                    budget()
        rows = _add_block(levels, block, rows, limits.max_rows)
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
    return rows, columns, levels.result()


def _add_block(levels: LevelCounter, block: list[list[str]], rows: int, max_rows: int) -> int:
    rows += len(block)
    if rows > max_rows:
        raise UploadRejected(413, MSG_TOO_MANY_ROWS.format(limit=max_rows))
    levels.add(block)
    return rows


Opener = Callable[[], AbstractContextManager[Any]]


def _sniff_text(
    open_stream: Opener, *, where: str, limits: Limits, budget: Budget
) -> tuple[int, list[str], dict[str, int]]:
    """Head checks, pickle check, then the row count; each pass reads a fresh stream."""
    with open_stream() as raw:
        head = io.BufferedReader(_Counting(raw, limits.max_decompressed)).read(
            max(HEAD_BYTES, limits.max_header_bytes + 1)
        )
    _check_text_head(head, where=where, limits=limits)
    with open_stream() as raw:
        stream = io.BufferedReader(_Counting(raw, limits.max_decompressed))
        reason = pickle_reason(stream, tick=budget)
    if reason is not None:
        raise _unsupported(MSG_PICKLE.format(where=where, reason=reason))
    budget()
    with open_stream() as raw:
        counting = _Counting(raw, limits.max_decompressed)
        with io.TextIOWrapper(
            io.BufferedReader(counting, _READ), encoding="utf-8-sig", newline=""
        ) as text:
            return _count_rows(csv.reader(text), where=where, limits=limits, budget=budget)


def _corrupt(kind: str) -> Callable[[BaseException], UploadRejected]:
    return lambda exc: _unsupported(f"the {kind} data is corrupt or unsupported ({exc})")


def _sniff_gzip(path: Path, *, limits: Limits, budget: Budget) -> Sniffed:
    @contextmanager
    def open_stream() -> Iterator[BinaryIO]:
        with gzip.open(path, "rb") as stream:
            yield stream  # type: ignore[misc]

    try:
        rows, columns, levels = _sniff_text(
            open_stream, where="the gzip member", limits=limits, budget=budget
        )
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt("gzip")(exc) from None
    return Sniffed("csv", "gzip", ".csv.gz", rows, columns, levels)


def _sniff_zip(path: Path, *, limits: Limits, budget: Budget) -> Sniffed:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _unsupported(f"not a readable zip archive ({exc})") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) != 1:
            raise _unsupported(f"the zip archive holds {len(members)} files, not exactly one CSV")
        member = members[0]
        if member.file_size > limits.max_decompressed:
            raise UploadRejected(413, MSG_BOMB.format(limit=limits.max_decompressed))
        where = f"zip member {member.filename!r}"
        try:
            rows, columns, levels = _sniff_text(
                lambda: archive.open(member), where=where, limits=limits, budget=budget
            )
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise _corrupt("zip")(exc) from None
        except RuntimeError as exc:  # encrypted member
            raise _unsupported(f"the zip member cannot be read ({exc})") from None
    return Sniffed("csv", "zip", ".csv.zip", rows, columns, levels)


def _sniff_parquet(path: Path, *, limits: Limits, budget: Budget) -> Sniffed:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(path, "rb") as f:
        f.seek(-4, io.SEEK_END)
        if f.read(4) != b"PAR1":
            raise _unsupported("the Parquet file is truncated (no PAR1 footer)")
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).replace(str(path), "the file")  # no server path in the answer
        raise UploadRejected(422, f"file: cannot read the Parquet footer: {reason}") from None
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if uncompressed > limits.max_decompressed:
        raise UploadRejected(413, MSG_BOMB.format(limit=limits.max_decompressed))
    if meta.num_rows > limits.max_rows:
        raise UploadRejected(413, MSG_TOO_MANY_ROWS.format(limit=limits.max_rows))
    if meta.num_rows == 0:
        raise UploadRejected(422, "file: the Parquet file has no rows")
    if meta.num_columns > limits.max_columns:
        raise UploadRejected(
            413, MSG_TOO_MANY_COLUMNS.format(count=meta.num_columns, limit=limits.max_columns)
        )
    columns = list(meta.schema.to_arrow_schema().names)
    _no_duplicates(columns)
    levels = parquet_levels(path, columns, tick=budget)
    return Sniffed("parquet", None, ".parquet", int(meta.num_rows), columns, levels)


def sniff_upload(path: Path, *, limits: Limits, stop: threading.Event | None = None) -> Sniffed:
    """Decide what ``path`` holds and measure it; raise :class:`UploadRejected` if unusable.

    Raises :class:`SniffStopped` soon after ``stop`` is set.
    """
    budget = Budget(limits.seconds, stop)
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if head.startswith(b"PAR1"):
        return _sniff_parquet(path, limits=limits, budget=budget)
    if head.startswith(b"\x1f\x8b"):
        return _sniff_gzip(path, limits=limits, budget=budget)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _sniff_zip(path, limits=limits, budget=budget)
    for magic, what in _OTHER_MAGIC.items():
        if head.startswith(magic):
            raise _unsupported(what)

    @contextmanager
    def open_stream() -> Iterator[BinaryIO]:
        with open(path, "rb") as stream:
            yield stream

    rows, columns, levels = _sniff_text(open_stream, where="the file", limits=limits, budget=budget)
    return Sniffed("csv", None, ".csv", rows, columns, levels)
