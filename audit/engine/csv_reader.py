"""CSV rows in chunks with pyarrow's streaming CSV reader — a whole file or a byte range.

One path for in-process chunks and for shards (a shard is bytes ``[start, stop)`` at
record starts, :mod:`audit.engine.reader`). It reads what pandas' ``read_csv`` read
before, value for value:

- missing values are pandas' default spellings (:data:`NA_VALUES`, ``""`` included),
  also in text columns and quoted; ``True``/``TRUE``/``true`` (and the ``False``
  spellings) are booleans, as pandas reads them;
- protected and strata columns come as dictionary (categorical) columns straight from
  the parser: raw text, so ``25`` and ``25.0`` stay two groups, as in Parquet;
- the other columns (labels, predictions, weights) come as raw text too and are typed
  per chunk by :func:`typed_table` (integers, else booleans, else floats, else text;
  pandas types each chunk alike), the one typing shared with an upload's columnar copy
  (:mod:`audit.engine.columnar`), so the two give the same values; labels and
  predictions are compared canonically (``1 == "1" == 1.0``) anyway;
- a line break inside quotes needs ``newlines_in_values``: it is on only when the bytes
  read hold a quote character (:func:`has_quote`, a memchr-speed look: 13 ms for 47 MB).
  Measured on 2M rows it costs no CPU single-threaded (0.40 against 0.41 CPU s); pyarrow
  documents it as slowing the multi-threaded block splitter, which a whole file uses.

Fallback: a row pyarrow refuses (wrong number of fields, bad UTF-8 ...) or a codec
pyarrow lacks (``.zip``, ``.xz``, ``.tar``) sends the rest of the range to pandas
(:func:`pandas_chunks`), the rows already given skipped: pandas then reads it as before,
and its messages name the file and row as before. Chunks have ``chunk_rows`` rows (the
last one fewer), whichever reader, so weighted sums are added in the same order.

Threads: ``use_threads`` is on for a whole file (one process reads it: idle cores help
the streaming reader convert blocks) and off for a shard (the planner gives one shard per
worker process, one process per core: a thread pool in each would only compete for the
same cores). Measured CPU time is the same either way (docs/performance.md, "Large
decision logs"), so a busy machine loses nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

# pandas' default ``na_values`` (pandas._libs.parsers.STR_NA_VALUES; a test keeps them equal)
NA_VALUES = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)
TRUE_VALUES = ("True", "TRUE", "true")
FALSE_VALUES = ("False", "FALSE", "false")
ARROW_CODECS = (".gz", ".bz2", ".zst")  # compressed files pyarrow decompresses as a stream
BLOCK_BYTES = 4 << 20  # bytes parsed at a time (pyarrow's block size)
QUOTE_SCAN = 16 << 20  # bytes looked at a time for a quote character


class Window(io.RawIOBase):
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

    def close(self) -> None:
        self._raw.close()
        super().close()


def has_quote(path: Path, start: int, stop: int) -> bool:
    """True when bytes ``[start, stop)`` of ``path`` hold a ``"``."""
    with open(path, "rb") as f:
        f.seek(start)
        left = stop - start
        while left > 0:
            block = f.read(min(QUOTE_SCAN, left))
            if not block:
                return False
            if b'"' in block:
                return True
            left -= len(block)
    return False


def typed_values(values: Any) -> Any:
    """A column of raw text (pyarrow strings, nulls for :data:`NA_VALUES`) typed as pandas
    would: int64, else booleans (:data:`TRUE_VALUES`, :data:`FALSE_VALUES`), else float64,
    else text. The one typing of labels, predictions and weights for a CSV file and for
    its columnar copy (:mod:`audit.engine.columnar`), so the two cannot drift."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if values.null_count == len(values):
        return values
    try:
        return pc.cast(values, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    spelled = pa.array(TRUE_VALUES + FALSE_VALUES)
    if pc.all(pc.is_in(values.drop_null(), value_set=spelled)).as_py():
        true = pc.is_in(values, value_set=pa.array(TRUE_VALUES))
        return pc.if_else(pc.is_valid(values), true, pa.scalar(None, pa.bool_()))
    try:
        return pc.cast(values, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return values


def typed_table(table: Any, text: list[str]) -> Any:
    """``table`` with every column but ``text`` (raw text: group names) typed by
    :func:`typed_values`; a dictionary column is typed once per distinct value."""
    import pyarrow as pa

    table = table.unify_dictionaries()
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if name in text:
            continue
        if pa.types.is_dictionary(column.type):
            if column.num_chunks == 0:
                continue
            values = typed_values(column.chunk(0).dictionary)
            typed = pa.chunked_array([values.take(c.indices) for c in column.chunks], values.type)
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            typed = pa.chunked_array([typed_values(c) for c in column.chunks])
        else:
            continue
        table = table.set_column(i, name, typed)
    return table


def _options(
    names: list[str],
    cols: list[str],
    text: list[str],
    *,
    skip: int,
    quoted: bool,
    threads: bool,
    plain: tuple[str, ...] = (),
) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    category = pa.dictionary(pa.int32(), pa.string())
    read = pacsv.ReadOptions(
        column_names=names, skip_rows=skip, block_size=BLOCK_BYTES, use_threads=threads
    )
    parse = pacsv.ParseOptions(newlines_in_values=quoted)
    # every column as raw text: group names as they are, the others typed by typed_table
    # (as dictionaries: once per distinct value; ``plain`` ones, weights, as strings)
    convert = pacsv.ConvertOptions(
        include_columns=cols,
        column_types={c: pa.string() if c in plain else category for c in cols},
        null_values=list(NA_VALUES),
        true_values=list(TRUE_VALUES),
        false_values=list(FALSE_VALUES),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return read, parse, convert


def text_options(names: list[str], *, skip: int, quoted: bool) -> Any:
    """Options that read every column as raw text (nulls for :data:`NA_VALUES`, as
    :func:`_options` reads a CSV file): the columnar copy's (:mod:`audit.engine.columnar`)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read = pacsv.ReadOptions(column_names=names, skip_rows=skip, block_size=BLOCK_BYTES)
    parse = pacsv.ParseOptions(newlines_in_values=quoted)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in names},
        null_values=list(NA_VALUES),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return read, parse, convert


def _rebatch(
    batches: Iterator[Any], chunk_rows: int, text: list[str]
) -> Generator[pd.DataFrame, None, None]:
    """Record batches regrouped into frames of ``chunk_rows`` rows (the last one fewer),
    typed by :func:`typed_table`."""
    import pyarrow as pa

    held: list[Any] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        while count >= chunk_rows:
            table = pa.Table.from_batches(held)
            yield typed_table(table.slice(0, chunk_rows), text).to_pandas()
            rest = table.slice(chunk_rows)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield typed_table(pa.Table.from_batches(held), text).to_pandas()


def arrow_chunks(
    open_stream: Callable[[], Any],
    *,
    names: list[str],
    cols: list[str],
    text: list[str],
    chunk_rows: int,
    skip: int,
    quoted: bool,
    threads: bool,
    fallback: Callable[[int], Iterator[pd.DataFrame]],
    plain: tuple[str, ...] = (),
) -> Generator[pd.DataFrame, None, None]:
    """Chunks parsed by pyarrow from ``open_stream()``; on a row it refuses, the rest
    from ``fallback(rows_given)`` (pandas, reading the same bytes)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    given = 0
    read, parse, convert = _options(
        names, cols, text, skip=skip, quoted=quoted, threads=threads, plain=plain
    )
    stream = open_stream()
    try:
        try:
            batches = iter(pacsv.open_csv(stream, read, parse, convert))
            for frame in _rebatch(batches, chunk_rows, text):
                given += len(frame)
                yield frame
            return
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass  # pandas reads this range as before (below), or names the row it refuses
    finally:
        stream.close()
    yield from fallback(given)


def pandas_chunks(
    source: Any,
    *,
    skip_given: int,
    chunk_rows: int,
    **read_csv: Any,
) -> Generator[pd.DataFrame, None, None]:
    """``pd.read_csv`` in chunks of ``chunk_rows``, the first ``skip_given`` rows left out
    (the rows pyarrow gave before it refused one)."""
    with pd.read_csv(source, chunksize=chunk_rows, low_memory=False, **read_csv) as reader:
        for frame in reader:
            if skip_given >= len(frame):
                skip_given -= len(frame)
                continue
            if skip_given:
                frame, skip_given = frame.iloc[skip_given:], 0
            yield frame
