"""Reading a dataset file: its format, its header, and its rows in chunks — whole or one shard.

A shard is a range of the file that any process can read on its own:

- Parquet: rows ``[start, stop)`` aligned to row groups (the footer says where each
  group starts, so a shard reads only its own groups);
- CSV: bytes ``[start, stop)``, both at the start of a record. The planner finds
  record starts with one quote-aware pass (:func:`record_starts`): a line break
  inside a quoted field (RFC 4180, quotes doubled inside quotes) is never taken for
  the end of a record. A shard then reads only its own bytes; no shard re-reads the
  rows before its own.

Compressed CSV (``.gz``, ``.zip``, ...) is one stream: it is read whole, never split.

``path`` is a local :class:`~pathlib.Path`, or a stored object read by ranged GETs
(:class:`audit.storage.ranged.StoredFile`: same ``name``, ``stat()``, ``open("rb")``);
bytes are opened only through ``path.open("rb")`` and :func:`_source`.
"""

from __future__ import annotations

import io
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from audit.engine.columns import text_columns
from audit.engine.spec import DatasetSpec
from audit.errors import AuditInputError

BLOCK = 8 << 20  # bytes read at a time by the record-start scan
COMPRESSED = (".gz", ".zip", ".bz2", ".xz", ".zst", ".tar")
ROWS = "rows"
BYTES = "bytes"


@dataclass(frozen=True)
class Shard:
    """A part of the file: rows ``[start, stop)`` (Parquet) or bytes (CSV, record starts)."""

    index: int
    start: int
    stop: int
    unit: str = ROWS


def _source(path: Path) -> Any:
    """What pandas / pyarrow open: a local path as it is, else a seekable binary stream."""
    return path if isinstance(path, Path) else path.open("rb")


def file_format(spec: DatasetSpec, path: Path) -> str:
    """``parquet`` or ``csv``: ``dataset.format``, else the file's extension."""
    if spec.format:
        return spec.format
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith(".parquet") or suffix.endswith(".pq"):
        return "parquet"
    return "csv"


def compressed(path: Path) -> bool:
    """A compressed CSV (pandas infers the codec from the extension): never split by bytes."""
    return path.name.lower().endswith(COMPRESSED)


def needed_columns(spec: DatasetSpec, extra: list[str]) -> list[str]:
    cols = list(spec.protected)
    for c in (spec.label, spec.prediction, spec.score, spec.strata, spec.weight, *extra):
        if c and c not in cols:
            cols.append(c)
    return cols


def _text(spec: DatasetSpec, kind: Any = str) -> dict[str, Any]:
    # protected columns as text: chunks, shards and files agree on '25' vs '25.0'
    # (``category``: text categories straight from the parser, no string column)
    # (dataset.strata too: its levels are group names alike)
    return {c: kind for c in text_columns(spec)}


def read_frame(spec: DatasetSpec, path: Path, *, columns: list[str] | None = None) -> pd.DataFrame:
    """Read the whole file (all columns, or ``columns``)."""
    fmt = file_format(spec, path)
    try:
        if fmt == "parquet":
            return pd.read_parquet(path, columns=columns)
        return pd.read_csv(path, usecols=columns, low_memory=False, dtype=_text(spec))
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise AuditInputError(f"dataset.path: cannot read {path} as {fmt}: {exc}") from None


def header(spec: DatasetSpec, path: Path) -> list[str]:
    fmt = file_format(spec, path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(_source(path)).names)
        return list(pd.read_csv(_source(path), nrows=0).columns)
    except AuditInputError:  # a stored object replaced or gone: its own message
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise AuditInputError(f"dataset.path: cannot read {path} as {fmt}: {exc}") from None


class _Window(io.RawIOBase):
    """Bytes ``[start, stop)`` of an open binary file, as a readable stream."""

    def __init__(self, raw: io.BufferedReader, start: int, stop: int) -> None:
        raw.seek(start)
        self._raw = raw
        self._left = stop - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        want = min(len(view), self._left)
        if want <= 0:
            return 0
        got = self._raw.readinto(view[:want])
        self._left -= got or 0
        return got or 0


def _csv_range(
    spec: DatasetSpec, path: Path, shard: Shard, cols: list[str], chunk_rows: int
) -> Generator[pd.DataFrame, None, None]:
    if shard.stop <= shard.start:
        return
    names = header(spec, path)
    with path.open("rb") as raw:
        stream = io.BufferedReader(_Window(raw, shard.start, shard.stop), 1 << 20)
        with pd.read_csv(
            stream,
            header=None,
            names=names,
            usecols=cols,
            chunksize=chunk_rows,
            dtype=_text(spec, "category"),
            low_memory=False,
        ) as reader:
            yield from reader


def read_chunks(
    spec: DatasetSpec,
    path: Path,
    *,
    chunk_rows: int,
    shard: Shard | None = None,
    extra: list[str] | None = None,
) -> Generator[pd.DataFrame, None, None]:
    """The file's rows (or one shard's) in chunks of at most ``chunk_rows``, needed columns only."""
    cols = needed_columns(spec, extra or [])
    if file_format(spec, path) == "parquet":
        import pyarrow.parquet as pq

        # protected text columns come as categoricals: no per-row strings, no re-hashing
        pf = pq.ParquetFile(_source(path), read_dictionary=list(spec.protected))
        groups = list(range(pf.metadata.num_row_groups))
        if shard is not None:
            starts = row_group_starts(pf.metadata)
            groups = [i for i in groups if shard.start <= starts[i] < shard.stop]
        if groups:
            for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=groups, columns=cols):
                yield batch.to_pandas()
        return
    if shard is not None:
        if shard.unit != BYTES:  # never read rows a shard does not own
            raise ValueError(f"CSV shards are byte ranges, got {shard}")
        yield from _csv_range(spec, path, shard, cols, chunk_rows)
        return
    with pd.read_csv(
        path, usecols=cols, chunksize=chunk_rows, low_memory=False, dtype=_text(spec, "category")
    ) as reader:
        yield from reader


def row_group_starts(meta: Any) -> list[int]:
    """The first row of each Parquet row group."""
    starts, offset = [], 0
    for i in range(meta.num_row_groups):
        starts.append(offset)
        offset += meta.row_group(i).num_rows
    return starts


def rows_before(spec: DatasetSpec, path: Path, byte: int) -> int:
    """Data rows of a CSV file before byte ``byte`` (a record start): a shard's first row
    number, counted only when a message must name a row."""
    data_start = record_starts(path, [0])[0]
    shard = Shard(0, data_start, byte, BYTES)
    return sum(len(c) for c in read_chunks(spec, path, chunk_rows=1_000_000, shard=shard))


def _scan(block: bytes, pos: int, odd: bool) -> tuple[int, bool]:
    """From ``pos`` in ``block`` with quote parity ``odd``: the index just past the first
    line break outside quotes (-1 if none in the block) and the parity reached."""
    while True:
        quote = block.find(b'"', pos)
        if not odd:
            newline = block.find(b"\n", pos)
            if newline != -1 and (quote == -1 or newline < quote):
                return newline + 1, False
        if quote == -1:
            return -1, odd
        odd, pos = not odd, quote + 1


def record_starts(path: Path, targets: list[int]) -> list[int]:
    """For each byte offset in ``targets`` (ascending), the first record start after it.

    A record starts just past a line break (LF; CRLF ends with LF) that lies outside
    quotes, counted from the file's first byte; offset 0 gives the first data record
    (the header is the record before it). The file size stands for "no record after".
    One sequential pass, stopping at the last target's answer.
    """
    size = path.stat().st_size
    out: list[int] = []
    pending = sorted(targets)
    odd = False  # inside quotes at the current position
    base = 0
    searching = False  # a target is reached; looking for the next line break outside quotes
    with path.open("rb") as f:
        while pending:
            block = f.read(BLOCK)
            if not block:
                break
            pos = 0
            while pending:
                if out and pending[0] < out[-1]:  # the line break found is after it too
                    out.append(out[-1])
                    pending.pop(0)
                    continue
                if not searching:
                    target = pending[0] - base
                    if target >= len(block):
                        break
                    if target > pos:
                        odd ^= block.count(b'"', pos, target) % 2 == 1
                        pos = target
                    searching = True
                found, odd = _scan(block, pos, odd)
                if found == -1:
                    break
                searching = False
                pending.pop(0)
                out.append(base + found)
                pos = found
            if pending and not searching:
                odd ^= block.count(b'"', pos) % 2 == 1
            base += len(block)
    return out + [size] * len(pending)
