"""Reading a dataset file: its format, its header, and its rows in chunks — whole or one shard.

A shard is a range of the file that any process can read on its own:

- Parquet: rows ``[start, stop)`` aligned to row groups (the footer says where each
  group starts, so a shard reads only its own groups);
- CSV: bytes ``[start, stop)``, both at the start of a record. The planner finds
  record starts with one quote-aware pass (:func:`record_starts`): a line break
  inside a quoted field (RFC 4180, quotes doubled inside quotes) is never taken for
  the end of a record. A shard then reads only its own bytes; no shard re-reads the
  rows before its own.

CSV is parsed by pyarrow's streaming reader, for the whole file and for shards alike
(:mod:`audit.engine.csv_reader`; pandas only where pyarrow refuses a row or a codec).
Compressed CSV (``.gz``, ``.zip``, ...) is one stream: it is read whole, never split.

``path`` is a local :class:`~pathlib.Path`, or a stored object read by ranged GETs
(:class:`audit.storage.ranged.StoredFile`: same ``name``, ``stat()``, ``open("rb")``);
bytes are opened only through ``path.open("rb")`` and :func:`_source`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from audit.engine import columnar, csv_reader
from audit.engine.columns import text_columns
from audit.engine.spec import DatasetSpec
from audit.errors import AuditInputError

BLOCK = 8 << 20  # bytes read at a time by the record-start scan
EXTRA = "\x00biasaudit:extra-field"  # a name no header has: fields beyond the header's
COMPRESSED = (".gz", ".zip", ".bz2", ".xz", ".zst", ".tar")
SAMPLE = 1 << 20  # bytes looked at to estimate a CSV file's rows
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


def _plain(spec: DatasetSpec) -> tuple[str, ...]:
    # weights: one value per row, read as strings (a dictionary would hash every row)
    return (spec.weight,) if spec.weight else ()


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


def _csv_chunks(
    spec: DatasetSpec, path: Path, cols: list[str], chunk_rows: int, shard: Shard | None
) -> Generator[pd.DataFrame, None, None]:
    """The CSV rows of the file (or of a byte shard), parsed by pyarrow
    (:mod:`audit.engine.csv_reader`), by pandas when pyarrow cannot."""
    import pyarrow as pa

    names = header(spec, path)
    text = _text(spec)  # pandas: as read_frame (its "category" typed '25' and '25.0' alike)
    if shard is None and compressed(path):  # one stream, header included

        def whole(given: int) -> Iterator[pd.DataFrame]:
            return csv_reader.pandas_chunks(
                path, skip_given=given, chunk_rows=chunk_rows, usecols=cols, dtype=text
            )

        if not path.name.lower().endswith(csv_reader.ARROW_CODECS):
            yield from whole(0)
            return
        yield from csv_reader.arrow_chunks(
            lambda: pa.input_stream(str(path), compression="detect"),
            names=names,
            cols=cols,
            text=text_columns(spec),
            chunk_rows=chunk_rows,
            skip=1,
            quoted=True,  # a stream: not looked at twice
            threads=True,  # one process reads the whole file
            fallback=whole,
            plain=_plain(spec),
        )
        return
    threads = shard is None  # one process reads the whole file; a shard: one per core
    if shard is None:
        shard = Shard(0, record_starts(path, [0])[0], path.stat().st_size, BYTES)
    if shard.stop <= shard.start:
        return
    start, stop = shard.start, shard.stop

    def window() -> Any:
        return io.BufferedReader(csv_reader.Window(path.open("rb"), start, stop), 1 << 20)

    def rest(given: int) -> Iterator[pd.DataFrame]:
        return _pandas_rest(spec, path, (start, stop), names, cols, chunk_rows, given)

    yield from csv_reader.arrow_chunks(
        lambda: pa.PythonFile(window(), mode="r"),
        names=names,
        cols=cols,
        text=text_columns(spec),
        chunk_rows=chunk_rows,
        skip=0,
        # a stored object is not read twice: the quoted-newline mode costs no CPU
        quoted=csv_reader.has_quote(path, start, stop) if isinstance(path, Path) else True,
        threads=threads,
        fallback=rest,
        plain=_plain(spec),
    )


def _pandas_rest(
    spec: DatasetSpec,
    path: Path,
    span: tuple[int, int],
    names: list[str],
    cols: list[str],
    chunk_rows: int,
    given: int,
) -> Iterator[pd.DataFrame]:
    """Bytes ``span`` of the CSV file read by pandas, the first ``given`` rows left out
    (pyarrow gave them before it refused a row).

    pandas given ``names`` drops the fields of a row beyond them: one more name catches
    them, so a row with too many fields is refused, as reading the file whole refuses it.
    """
    start, stop = span
    if _first_fields(path, start, stop) > len(names):  # pandas would take an index
        raise _too_many_fields(spec, path, start, 1, len(names))
    stream = io.BufferedReader(csv_reader.Window(path.open("rb"), start, stop), 1 << 20)
    try:
        for frame in csv_reader.pandas_chunks(
            stream,
            skip_given=given,
            chunk_rows=chunk_rows,
            header=None,
            names=[*names, EXTRA],
            dtype=_text(spec),
        ):
            extra = frame[EXTRA].notna().to_numpy()
            if extra.any():
                at = int(frame.index[extra.argmax()]) + 1  # row of the range, from 1
                raise _too_many_fields(spec, path, start, at, len(names))
            yield frame[cols]
    except pd.errors.ParserError as exc:  # more fields still: pandas names the line
        line = re.search(r"in line (\d+)", str(exc))
        if line is None:
            field = _field(path)
            message = f"{field}: cannot read {path.name} as csv: {exc}"
            raise AuditInputError(message, field=field) from None
        raise _too_many_fields(spec, path, start, int(line.group(1)), len(names)) from None
    finally:
        stream.close()


def _field(path: Path) -> str:
    """The spec field that names the file: a stored object is the upload's id."""
    return "dataset.path" if isinstance(path, Path) else "dataset.id"


def _first_fields(path: Path, start: int, stop: int) -> int:
    """Fields of the first record of bytes ``[start, stop)`` (its first MiB, quotes kept)."""
    import csv

    with path.open("rb") as f:
        f.seek(start)
        head = f.read(min(stop - start, 1 << 20)).decode("utf-8", errors="replace")
    return len(next(csv.reader(io.StringIO(head)), []))


def _too_many_fields(
    spec: DatasetSpec, path: Path, start: int, at: int, fields: int
) -> AuditInputError:
    """Row ``at`` (from 1) of the bytes from ``start`` has more fields than the header;
    the message names the row as the others do (from 0, the header not counted)."""
    row = rows_before(spec, path, start) + at - 1
    field = _field(path)
    return AuditInputError(
        f"{field}: cannot read {path.name} as csv: row {row} (line {row + 2} of the file) "
        f"has more fields than the header's {fields}",
        field=field,
    )


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
        # protected text columns come as categoricals: no per-row strings, no re-hashing
        yield from _parquet_chunks(path, cols, list(spec.protected), chunk_rows, shard)
        return
    copy = columnar.usable(path) if shard is None or shard.unit == ROWS else None
    if copy is not None:  # the upload's columnar copy: raw text, typed as the CSV reader does
        text = text_columns(spec)
        dictionary = [c for c in cols if c not in _plain(spec)]
        yield from _parquet_chunks(copy, cols, dictionary, chunk_rows, shard, text=text)
        return
    if shard is not None and shard.unit != BYTES:  # never read rows a shard does not own
        raise ValueError(f"CSV shards are byte ranges (or rows of a columnar copy), got {shard}")
    yield from _csv_chunks(spec, path, cols, chunk_rows, shard)


def _parquet_chunks(
    path: Path,
    cols: list[str],
    dictionary: list[str],
    chunk_rows: int,
    shard: Shard | None,
    *,
    text: list[str] | None = None,
) -> Generator[pd.DataFrame, None, None]:
    """The Parquet file's rows (a shard's row groups) in chunks; with ``text``, a columnar
    copy: every column but ``text`` typed by :func:`csv_reader.typed_table`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(_source(path), read_dictionary=dictionary)
    groups = list(range(pf.metadata.num_row_groups))
    if shard is not None:
        starts = row_group_starts(pf.metadata)
        groups = [i for i in groups if shard.start <= starts[i] < shard.stop]
    if not groups:
        return
    for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=groups, columns=cols):
        if text is None:
            yield batch.to_pandas()
        else:
            yield csv_reader.typed_table(pa.Table.from_batches([batch]), text).to_pandas()


def estimate_rows(spec: DatasetSpec, path: Path) -> int | None:
    """Data rows of the file, cheaply: the Parquet footer's count; for a CSV file the
    line breaks in its first ``SAMPLE`` bytes scaled to its size (a guess, good enough to
    decide whether to read in chunks); None for a compressed CSV."""
    if file_format(spec, path) == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(_source(path)).metadata.num_rows)
    if compressed(path):
        return None
    size = path.stat().st_size
    with path.open("rb") as f:
        sample = f.read(SAMPLE)
    lines = sample.count(b"\n")
    if len(sample) >= size or lines == 0:
        return max(lines - 1, 0)  # the whole file (less its header), or one long record
    return size * lines // len(sample)


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
