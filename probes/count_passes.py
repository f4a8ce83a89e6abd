"""The counting passes behind :func:`probes.counts.count_groups` (dense and sparse).

Each pass turns per-row level codes and confusion cells into the counts of the
observed groups; weighted (``dataset.weight``) passes sum the weights and their
squares instead of ones.
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
    coded: list[np.ndarray],
    sizes: list[int],
    y_pred: np.ndarray,
    y_true: np.ndarray | None,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Counts over the whole (small) key space in blocks; only observed groups returned."""
    n = len(y_pred)
    size = int(np.prod(sizes)) * 4
    dtype = np.int32 if size < 2**31 else np.int64
    flat = np.zeros(size, dtype=np.int64 if weight is None else np.float64)
    flat_sq = None if weight is None else np.zeros(size, dtype=np.float64)
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
        if weight is None:
            flat += np.bincount(key, minlength=size)
        else:
            w = weight[start:stop]
            flat += np.bincount(key, weights=w, minlength=size)
            flat_sq += np.bincount(key, weights=w * w, minlength=size)  # type: ignore[operator]
    table = flat.reshape(-1, 4)
    observed = np.flatnonzero(table.sum(axis=1) > 0)
    index = np.stack(np.unravel_index(observed, sizes), axis=1).astype(np.int64)
    sq = None if flat_sq is None else flat_sq.reshape(-1, 4)[observed]
    return index, table[observed], sq


def sparse_pass(
    coded: list[np.ndarray],
    sizes: list[int],
    y_pred: np.ndarray,
    y_true: np.ndarray | None,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Counts of the observed groups only: row keys, ``np.unique``, one ``bincount``."""
    stacked = np.stack([np.asarray(c, dtype=np.int64) for c in coded], axis=1)
    index, inverse = lexsorted(stacked, sizes)
    del stacked
    cell = 4 * inverse
    if y_true is not None:
        cell += 2 * np.asarray(y_true, dtype=np.int64)
    cell += np.asarray(y_pred, dtype=np.int64)
    if weight is None:
        return index, np.bincount(cell, minlength=4 * len(index)).reshape(-1, 4), None
    table = np.bincount(cell, weights=weight, minlength=4 * len(index)).reshape(-1, 4)
    sq = np.bincount(cell, weights=weight * weight, minlength=4 * len(index)).reshape(-1, 4)
    return index, table, sq
