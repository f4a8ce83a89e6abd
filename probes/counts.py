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
    """Integer codes and string levels of a (categorical) column; unused levels dropped."""
    cat = column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
    cat = cat.cat.remove_unused_categories()
    codes = cat.cat.codes.to_numpy()
    if (codes < 0).any():
        raise ValueError(f"column {column.name!r} has missing values; map them to 'unknown' first")
    return codes, tuple(str(c) for c in cat.cat.categories)


def count_groups(
    frame: pd.DataFrame,
    attributes: Sequence[str],
    *,
    y_pred: np.ndarray,
    y_true: np.ndarray | None = None,
) -> GroupCounts:
    """Count confusion cells for every intersection cell of ``attributes`` in one pass."""
    if len(y_pred) != len(frame):
        raise ValueError("y_pred length differs from the number of rows")
    combined: np.ndarray | None = None
    levels: list[tuple[str, ...]] = []
    for a in attributes:
        codes, lv = codes_of(frame[a])
        levels.append(lv)
        k = max(len(lv), 1)
        if combined is None:
            combined = codes.astype(np.int64)
        else:
            combined *= k
            combined += codes
    assert combined is not None
    size = int(np.prod([max(len(lv), 1) for lv in levels]))
    cell = (
        np.asarray(y_pred, dtype=np.int64)
        if y_true is None
        else (np.asarray(y_true, dtype=np.int64) * 2 + np.asarray(y_pred, dtype=np.int64))
    )
    combined *= 4
    combined += cell
    flat = np.bincount(combined, minlength=size * 4)
    cube = flat.reshape(tuple(max(len(lv), 1) for lv in levels) + (4,))
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
