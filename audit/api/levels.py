"""Distinct values per column of an upload, counted up to a bound.

The API refuses, at submission, a protected column with more distinct values
than ``policy.max_levels`` (an id column named by mistake), so each upload
records how many distinct values each column has. Counting stops for a
column once it passes :data:`LEVELS_CAP`: the recorded count is then
``LEVELS_CAP + 1``, read as "more than LEVELS_CAP". Memory stays bounded by
columns x cap (values are kept as 64-bit hashes, not as text).

Values are compared as text, as they appear in the file, except that the
missing-value spellings pandas reads as NA (``""``, ``NA``, ``null``, ...)
count as one value (the engine's ``unknown`` group). A column whose numbers
are spelt two ways (``1`` and ``1.0``) is counted high; the engine has the
last word on those.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from audit.engine.csv_reader import NA_VALUES

LEVELS_CAP = 1_000
# pandas' default NA spellings (read_csv ``na_values``), as the engine's CSV reader has them
NA_TEXT = frozenset(NA_VALUES)
_NA_HASHES = frozenset(hash(v) for v in NA_TEXT)
_SLACK = len(NA_TEXT)  # a set may hold every NA spelling on top of the real values


class LevelCounter:
    """Distinct values of each column, fed blocks of CSV records (lists of strings)."""

    def __init__(self, columns: Sequence[str], *, cap: int = LEVELS_CAP) -> None:
        self.columns = list(columns)
        self.cap = cap
        self._seen: list[set[int]] = [set() for _ in self.columns]
        self._open = list(range(len(self.columns)))  # columns still being counted

    def add(self, block: list[list[str]]) -> None:
        """Count one block of records; short records count as missing values (as pandas)."""
        if not self._open or not block:
            return
        width = len(self.columns)
        if any(len(record) != width for record in block):
            block = [(record + [""] * width)[:width] for record in block]
        still_open = []
        for i in self._open:
            seen = self._seen[i]
            seen.update(map(hash, map(itemgetter(i), block)))
            if len(seen) <= self.cap + _SLACK:
                still_open.append(i)
        self._open = still_open

    def add_values(self, column: int, values: Any) -> None:
        """Count an iterable of (hashable) values of one column (Parquet)."""
        if column in self._open:
            seen = self._seen[column]
            seen.update(hash(v) for v in values)
            if len(seen) > self.cap + _SLACK:
                self._open.remove(column)

    def is_open(self, column: int) -> bool:
        return column in self._open

    def result(self) -> dict[str, int]:
        """``{column: distinct values}``, each at most ``cap + 1`` ("more than cap")."""
        out: dict[str, int] = {}
        for name, seen in zip(self.columns, self._seen, strict=True):
            na = len(seen & _NA_HASHES)
            count = len(seen) - na + (1 if na else 0)
            out[name] = min(count, self.cap + 1)
        return out


def parquet_levels(
    path: Path, columns: list[str], *, tick: Callable[[], None], cap: int = LEVELS_CAP
) -> dict[str, int]:
    """:class:`LevelCounter` over a Parquet file, one column of one row group at a time.

    A column whose values cannot be compared (nested types) is left out.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counter = LevelCounter(columns, cap=cap)
    skipped: set[int] = set()
    with pq.ParquetFile(path) as pf:
        for group in range(pf.metadata.num_row_groups):
            for i, name in enumerate(columns):
                if i in skipped or not counter.is_open(i):
                    continue
                tick()
                try:
                    chunk = pf.read_row_group(group, columns=[name]).column(0)
                    values = pc.unique(chunk).to_pylist()
                    counter.add_values(i, ("" if v is None else v for v in values))
                except (pa.ArrowException, TypeError, ValueError):
                    skipped.add(i)
    result = counter.result()
    return {name: n for i, name in enumerate(columns) if i not in skipped for n in [result[name]]}
