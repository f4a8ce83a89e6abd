"""Confusion-cell counts per group: the single source of truth for group metrics.

One vectorised pass (``np.bincount``) counts the four confusion cells for every
cell of the full intersection of the protected attributes. Every attribute and
every smaller intersection is then a sum over the other axes, and counts from
chunks or shards merge by addition (:meth:`GroupCounts.__add__`).

Cell order on the last axis: ``[tn, fp, fn, tp]`` = ``2 * y_true + y_pred``.
Without labels, ``y_true`` is taken as 0 (only ``tn``/``fp`` are used, i.e.
not-selected / selected).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

TN, FP, FN, TP = 0, 1, 2, 3


@dataclass(frozen=True)
class GroupCounts:
    """Counts over the full intersection of ``attributes``.

    ``cells`` has shape ``(len(levels[0]), ..., len(levels[-1]), 4)``.
    """

    attributes: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    cells: np.ndarray
    has_label: bool

    @property
    def rows(self) -> int:
        return int(self.cells.sum())

    def marginal(self, attrs: Sequence[str]) -> GroupCounts:
        """Counts for a subset of the attributes (sum over the others)."""
        keep = [self.attributes.index(a) for a in attrs]
        drop = tuple(i for i in range(len(self.attributes)) if i not in keep)
        cube = self.cells.sum(axis=drop) if drop else self.cells
        # sum keeps the remaining axes in their original order; reorder to attrs
        order = sorted(keep)
        perm = [order.index(i) for i in keep] + [len(keep)]
        cube = np.transpose(cube, perm)
        return GroupCounts(
            attributes=tuple(attrs),
            levels=tuple(self.levels[i] for i in keep),
            cells=cube,
            has_label=self.has_label,
        )

    def flat(self) -> tuple[list[tuple[str, ...]], np.ndarray]:
        """Groups (tuples of levels, C order) and a ``(groups, 4)`` count matrix."""
        shape = self.cells.shape[:-1]
        keys = [tuple(self.levels[d][i] for d, i in enumerate(idx)) for idx in np.ndindex(*shape)]
        return keys, self.cells.reshape(-1, 4)

    def __add__(self, other: GroupCounts) -> GroupCounts:
        """Merge counts from two chunks/shards (levels aligned by label)."""
        if self.attributes != other.attributes:
            raise ValueError("cannot add counts over different attributes")
        levels = tuple(
            tuple(sorted(set(a) | set(b), key=_level_key))
            for a, b in zip(self.levels, other.levels)
        )
        out = np.zeros(tuple(len(lv) for lv in levels) + (4,), dtype=np.int64)
        for part in (self, other):
            index = tuple(
                np.array([lv.index(x) for x in plv]) for lv, plv in zip(levels, part.levels)
            )
            out[np.ix_(*index, np.arange(4))] += part.cells
        return GroupCounts(self.attributes, levels, out, self.has_label and other.has_label)

    def to_dict(self) -> dict[str, object]:
        return {
            "attributes": list(self.attributes),
            "levels": [list(lv) for lv in self.levels],
            "cells": self.cells.tolist(),
            "has_label": self.has_label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> GroupCounts:
        return cls(
            attributes=tuple(d["attributes"]),  # type: ignore[arg-type]
            levels=tuple(tuple(lv) for lv in d["levels"]),  # type: ignore[attr-defined]
            cells=np.asarray(d["cells"], dtype=np.int64),
            has_label=bool(d["has_label"]),
        )


def _level_key(x: str) -> tuple[int, str]:
    return (1 if x == "unknown" else 0, x)


def codes_of(column: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes (a view for categoricals: no copy) and string levels of a column."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        levels = tuple(str(c) for c in column.cat.categories)
    else:
        codes, uniques = pd.factorize(column, sort=True)
        levels = tuple(str(c) for c in uniques)
    if codes.size and codes.min() < 0:
        raise ValueError(f"column {column.name!r} has missing values; map them to 'unknown' first")
    return codes, levels


BLOCK_ROWS = 1 << 18  # temporaries stay O(block), whatever the number of rows


def count_groups(
    frame: pd.DataFrame,
    attributes: Sequence[str],
    *,
    y_pred: np.ndarray,
    y_true: np.ndarray | None = None,
) -> GroupCounts:
    """Count confusion cells for every intersection cell of ``attributes`` in one pass.

    Rows are processed in blocks so that peak memory beyond the input stays
    bounded; levels that never occur are dropped from the cube afterwards.
    """
    n = len(frame)
    if len(y_pred) != n:
        raise ValueError("y_pred length differs from the number of rows")
    if y_true is not None and len(y_true) != n:
        raise ValueError("y_true length differs from the number of rows")
    coded = [codes_of(frame[a]) for a in attributes]
    sizes = [max(len(lv), 1) for _, lv in coded]
    size = int(np.prod(sizes)) * 4
    dtype = np.int32 if size < 2**31 else np.int64
    flat = np.zeros(size, dtype=np.int64)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        key: np.ndarray[Any, np.dtype[np.signedinteger[Any]]] = np.zeros(stop - start, dtype=dtype)
        for (codes, _), k in zip(coded, sizes):
            key *= k
            key += codes[start:stop]  # type: ignore[arg-type]
        key *= 4
        if y_true is not None:
            key += 2 * np.asarray(y_true[start:stop], dtype=dtype)  # type: ignore[arg-type]
        key += np.asarray(y_pred[start:stop], dtype=dtype)
        flat += np.bincount(key, minlength=size)
    cube = flat.reshape((*sizes, 4))
    levels = []
    for axis, (_, lv) in enumerate(coded):
        other = tuple(i for i in range(cube.ndim) if i != axis)
        used = np.flatnonzero(cube.sum(axis=other) > 0) if lv else np.array([], dtype=int)
        cube = np.take(cube, used, axis=axis)
        levels.append(tuple(lv[i] for i in used))
    return GroupCounts(tuple(attributes), tuple(levels), cube, y_true is not None)


def attribute_sets(attributes: Sequence[str], intersectional: bool) -> list[tuple[str, ...]]:
    """Single attributes, then (if asked) every combination of two or more."""
    sets: list[tuple[str, ...]] = [(a,) for a in attributes]
    if intersectional:
        for r in range(2, len(attributes) + 1):
            sets.extend(combinations(attributes, r))
    return sets


def rates(c: np.ndarray) -> dict[str, np.ndarray]:
    """Every count-derived rate for a ``(..., 4)`` count array; NaN where undefined."""
    c = np.asarray(c, dtype=float)
    tn, fp, fn, tp = c[..., TN], c[..., FP], c[..., FN], c[..., TP]
    n = tn + fp + fn + tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "n": n,
            "selected": fp + tp,
            "selection_rate": (fp + tp) / n,
            "tpr": tp / (tp + fn),
            "fpr": fp / (fp + tn),
            "fnr": fn / (tp + fn),
            "tnr": tn / (fp + tn),
            "precision": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "accuracy": (tp + tn) / n,
            "base_rate": (tp + fn) / n,
            "fdr": fp / (tp + fp),
            "for": fn / (tn + fn),
        }
