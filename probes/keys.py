"""Row keys and group-bys over integer codes: the passes behind :mod:`probes.counts`.

Pure numpy. A group is a row of level codes; groups are kept unique and in
lexicographic order (the C order of the full cube), so every consumer sees the
order a dense cube would give. Weighted (``dataset.weight``) passes sum the
weights and their squares instead of ones.
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


def small_marginal(
    index: np.ndarray, sizes: Sequence[int], table: np.ndarray, sq: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """A marginal whose key space is no larger than the groups: bincount, no sort.

    ``index`` holds the kept attributes' codes of each group; returns the observed
    marginal groups (lexicographic order), the inverse, and the summed ``table``
    (and ``sq``). Integer counts stay exact integers; weighted sums stay floats.
    """
    cells = int(np.prod(sizes))
    key = np.ravel_multi_index(tuple(index.T), tuple(sizes))
    used = np.bincount(key, minlength=cells) > 0
    observed = np.flatnonzero(used)
    rank = np.full(used.size, -1, dtype=np.int64)
    rank[observed] = np.arange(observed.size)
    out = np.stack(np.unravel_index(observed, tuple(sizes)), axis=1).astype(np.int64)

    def summed(values: np.ndarray) -> np.ndarray:
        sums = np.stack(
            [np.bincount(key, weights=values[:, c], minlength=cells) for c in range(4)], axis=1
        )[observed]
        return sums if values.dtype.kind == "f" else np.rint(sums).astype(values.dtype)

    return out, rank[key], summed(table), None if sq is None else summed(sq)


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
