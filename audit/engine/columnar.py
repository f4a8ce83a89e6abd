"""The columnar copy of a CSV dataset: the same rows as Parquet, raw text, row groups.

An uploaded CSV file gets a copy beside it, ``<id>.csv.columnar.parquet``
(:func:`copy_path`), made once by :func:`convert_csv` (the ``biasaudit.convert_dataset``
task, right after the upload is registered). A count-only audit of the CSV file then
reads its rows from the copy (:func:`usable`): Parquet row groups instead of parsing
text, shards aligned to the row groups; everything else (sha256, downloads, reviews,
a small file read whole) stays the original's.

The copy knows no spec, so it holds every column as the raw text pyarrow's CSV parser
gives (nulls for pandas' NA spellings, as :mod:`audit.engine.csv_reader` reads a CSV
file); the reader types labels, predictions and weights with the same function for
both (:func:`audit.engine.csv_reader.typed_table`), so results are equal by
construction. A file the parser refuses (ragged rows, bad UTF-8, a ``.zip``) gets no
copy (:class:`ConversionRefused`) and is read as before: the copy is an optimisation,
never a new way to fail.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from audit.engine import csv_reader

SUFFIX = ".columnar.parquet"
SOURCE_BYTES = b"biasaudit.source_bytes"
SOURCE_SHA256 = b"biasaudit.source_sha256"


class ConversionRefused(ValueError):
    """The CSV file cannot be copied as it is (the audit reads the CSV file instead)."""


def copy_path(path: Path) -> Path:
    """Where the columnar copy of the CSV file ``path`` lives: beside it."""
    return path.with_name(path.name + SUFFIX)


def usable(path: Path) -> Path | None:
    """The columnar copy of ``path`` when there is one made from a file of its size.

    A stored object read by ranges (:class:`audit.storage.ranged.StoredFile`) names its
    copy, itself read by ranges, in ``columnar`` (set by the worker from the store)."""
    if isinstance(path, Path):
        copy: Any = copy_path(path)
        if path.name.endswith(SUFFIX) or not copy.is_file():
            return None
    else:
        copy = getattr(path, "columnar", None)
        if copy is None:
            return None
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(copy if isinstance(copy, Path) else copy.open("rb")).metadata or {}
    except (OSError, ValueError):
        return None
    return copy if meta.get(SOURCE_BYTES) == str(path.stat().st_size).encode() else None


def read_from_copy(spec: Any, path: Path) -> bool:
    """Whether a count of the CSV file ``path`` reads its rows from the columnar copy."""
    from audit.engine import reader

    return reader.file_format(spec, path) == "csv" and usable(path) is not None


def _stream(path: Path, names: list[str]) -> tuple[Any, int, bool]:
    """The data rows' byte stream, the rows to skip, and whether quotes were seen."""
    import pyarrow as pa

    from audit.engine import reader

    if reader.compressed(path):
        if not path.name.lower().endswith(csv_reader.ARROW_CODECS):
            raise ConversionRefused(f"{path.name}: a codec pyarrow does not stream")
        return pa.input_stream(str(path), compression="detect"), 1, True
    start, size = reader.record_starts(path, [0])[0], path.stat().st_size
    window = io.BufferedReader(csv_reader.Window(open(path, "rb"), start, size), 1 << 20)
    return pa.PythonFile(window, mode="r"), 0, csv_reader.has_quote(path, start, size)


def convert_csv(path: Path, dest: Path, *, row_group_rows: int, sha256: str | None = None) -> int:
    """Write the columnar copy of the CSV file ``path`` to ``dest`` (atomically: a temp
    file renamed); its rows. Raises :class:`ConversionRefused` (nothing written) for a
    file pyarrow's parser refuses."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        names = list(pd.read_csv(path, nrows=0).columns)  # as reader.header names them
    except Exception as exc:  # noqa: BLE001 - any reader failure: no copy
        raise ConversionRefused(f"{path.name}: {exc}") from None
    stream, skip, quoted = _stream(path, names)
    read, parse, convert = csv_reader.text_options(names, skip=skip, quoted=quoted)
    schema = pa.schema([(n, pa.string()) for n in names]).with_metadata(
        {SOURCE_BYTES: str(path.stat().st_size), SOURCE_SHA256: sha256 or ""}
    )
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        with stream, pq.ParquetWriter(tmp, schema, compression="snappy") as writer:
            held: list[Any] = []
            count = 0
            for batch in pacsv.open_csv(stream, read, parse, convert):
                held.append(batch)
                count += batch.num_rows
                if count >= row_group_rows:
                    table = pa.Table.from_batches(held)
                    done = count - count % row_group_rows
                    writer.write_table(table.slice(0, done), row_group_size=row_group_rows)
                    rest = table.slice(done)
                    held, count = rest.to_batches(), rest.num_rows
                    rows += done
            if count:
                writer.write_table(pa.Table.from_batches(held))
                rows += count
        os.replace(tmp, dest)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ConversionRefused(f"{path.name}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return rows
