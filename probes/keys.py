"""Row keys and group-bys over integer codes: the passes behind :mod:`probes.counts`.

Pure numpy. A group is a row of level codes; groups are kept unique and in
lexicographic order (the C order of the full cube), so every consumer sees the
order a dense cube would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_INT64_HEADROOM = 1 << 62
BLOCK_ROWS = 1 << 18  # temporaries of the dense pass stay O(block), whatever the rows


def group_sum(values: np.ndarray, inverse: np.ndarray, groups: int, axis: int = 0) -> np.ndarray:
    """Sum ``values`` along ``axis`` into ``groups`` bins given by ``inverse`` (exact ints).

    Every bin must be hit at least once (true for group-bys of observed groups).
    """
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(groups))
    return np.add.reduceat(np.take(values, order, axis=axis), starts, axis=axis)


def lexsorted(index: np.ndarray, sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Unique rows of an integer ``(n, k)`` array in lexicographic order, and the inverse."""
    n, k = index.shape
    if k == 0:
        return np.zeros((1 if n else 0, 0), dtype=np.int64), np.zeros(n, dtype=np.int64)
    key = np.zeros(n, dtype=np.int64)
    space = 1
    for j in range(k):
        size = max(int(sizes[j]), 1)
        if space * size >= _INT64_HEADROOM:  # re-rank: order is kept, the space shrinks to <= n
            uniq, key = np.unique(key, return_inverse=True)
            space = len(uniq)
        key = key * size + index[:, j]
        space *= size
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return index[first], inverse.reshape(-1)


def dense_pass(
    coded: list[np.ndarray], sizes: list[int], y_pred: np.ndarray, y_true: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts over the whole (small) key space in blocks; only observed groups returned."""
    n = len(y_pred)
    size = int(np.prod(sizes)) * 4
    dtype = np.int32 if size < 2**31 else np.int64
    flat = np.zeros(size, dtype=np.int64)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        key: np.ndarray[Any, np.dtype[np.signedinteger[Any]]] = np.zeros(stop - start, dtype=dtype)
        for codes, k in zip(coded, sizes):
            key *= k
            key += codes[start:stop]  # type: ignore[arg-type]
        key *= 4
        if y_true is not None:
            key += 2 * np.asarray(y_true[start:stop], dtype=dtype)  # type: ignore[arg-type]
        key += np.asarray(y_pred[start:stop], dtype=dtype)
        flat += np.bincount(key, minlength=size)
    table = flat.reshape(-1, 4)
    observed = np.flatnonzero(table.sum(axis=1) > 0)
    index = np.stack(np.unravel_index(observed, sizes), axis=1).astype(np.int64)
    return index, table[observed]


def sparse_pass(
    coded: list[np.ndarray], sizes: list[int], y_pred: np.ndarray, y_true: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the observed groups only: row keys, ``np.unique``, one ``bincount``."""
    stacked = np.stack([np.asarray(c, dtype=np.int64) for c in coded], axis=1)
    index, inverse = lexsorted(stacked, sizes)
    del stacked
    cell = 4 * inverse
    if y_true is not None:
        cell += 2 * np.asarray(y_true, dtype=np.int64)
    cell += np.asarray(y_pred, dtype=np.int64)
    table = np.bincount(cell, minlength=4 * len(index)).reshape(-1, 4)
    return index, table


def drop_unused(
    index: np.ndarray, levels: list[tuple[str, ...]]
) -> tuple[np.ndarray, tuple[tuple[str, ...], ...]]:
    """Levels no observed group uses are dropped (a monotone renumbering keeps the order)."""
    kept = []
    for d, lv in enumerate(levels):
        used = np.unique(index[:, d])
        if len(used) < len(lv):
            index[:, d] = np.searchsorted(used, index[:, d])
            lv = tuple(lv[i] for i in used)
        kept.append(lv)
    return index, tuple(kept)
