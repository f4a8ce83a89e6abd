"""Confusion-cell counts per group: the single source of truth for group metrics.

Only the combinations of protected levels that occur are counted: one pass builds
a key per row (mixed radix over the level codes, re-ranked whenever the next
column would overflow int64), the observed keys are found (``np.bincount`` over
the key space when it has no more cells than rows, else ``np.unique``) and the
four confusion cells are counted per observed group.
Memory is O(rows + observed groups), never the product of the level counts.
Every attribute and every smaller intersection is a group-by of the observed
table, and counts from chunks or shards merge by addition
(:meth:`GroupCounts.__add__`).

Cell order: ``[tn, fp, fn, tp]`` = ``2 * y_true + y_pred``. Without labels,
``y_true`` is taken as 0 (only ``tn``/``fp`` are used, i.e. not-selected /
selected). Groups are listed in lexicographic order of their level indices (the
C order of the full cube), so every consumer sees the order it always saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from probes.base import ProbeError
from probes.keys import (
    dense_pass,
    drop_unused,
    group_sum,
    lexsorted,
    small_marginal,
    sparse_pass,
)

TN, FP, FN, TP = 0, 1, 2, 3

MSG_TOO_MANY_LEVELS = (
    "{field}: column {column!r} has {count} distinct values, more than "
    "policy.max_levels={limit}; a protected attribute or stratum has a few groups "
    "(is it an id column?). Raise policy.max_levels if this is intended"
)
MSG_TOO_MANY_GROUPS = (
    "dataset.protected: {attribute!r} has {count} observed groups, more than "
    "policy.max_groups={limit}; audit fewer or coarser attributes (intersectional: false, "
    "dataset.bins) or raise policy.max_groups"
)

MSG_TOO_MANY_TOTAL = (
    "dataset.protected: the attributes and intersections audited have {count} observed groups "
    "in all ({sets} attribute sets counted; largest: {largest}), more than "
    "policy.max_total_groups={limit}; "
    "audit fewer attributes or intersections (intersectional: false) or raise "
    "policy.max_total_groups"
)

DENSE_CELLS = 1 << 20  # count over the key space directly when it has <= max(rows, this) cells


@dataclass(frozen=True)
class GroupCounts:
    """Confusion counts of the observed groups of the intersection of ``attributes``.

    ``index`` is ``(groups, len(attributes))``: each group's level index per
    attribute, rows unique and in lexicographic order; ``table`` is
    ``(groups, 4)`` int64 counts. Only groups with at least one row are listed.
    Weighted counts (``dataset.weight``): ``table`` holds float sums of the weights and
    ``sq`` the sums of their squares per cell (for the Kish effective sample size).
    """

    attributes: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    index: np.ndarray
    table: np.ndarray
    has_label: bool
    sq: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return int(round(float(self.table.sum())))

    @property
    def weighted(self) -> bool:
        return self.sq is not None

    def n_effective(self) -> np.ndarray | None:
        """Kish effective sample size per group, ``(sum w)^2 / sum w^2``; None unweighted."""
        if self.sq is None:
            return None
        total, sq = self.table.sum(axis=1), self.sq.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sq > 0, total * total / np.where(sq > 0, sq, 1), 0.0)

    @property
    def n_groups(self) -> int:
        return int(self.table.shape[0])

    def marginal_inverse(self, attrs: Sequence[str]) -> tuple[GroupCounts, np.ndarray]:
        """Counts for a subset of the attributes, and which sub-group each group falls in."""
        keep = [self.attributes.index(a) for a in attrs]
        if keep == list(range(len(self.attributes))):
            return self, np.arange(self.n_groups)
        sizes = [len(self.levels[i]) for i in keep]
        space = float(np.prod([float(max(k, 1)) for k in sizes]))
        sq = None
        if self.n_groups and space <= max(self.n_groups, DENSE_CELLS):
            marginal = small_marginal(self.index[:, keep], sizes, self.table, self.sq)
            index, inverse, table, sq = marginal
        else:
            index, inverse = lexsorted(self.index[:, keep], sizes)
            table = group_sum(self.table, inverse, len(index)) if len(index) else self.table[:0]
            if self.sq is not None:
                sq = group_sum(self.sq, inverse, len(index)) if len(index) else self.sq[:0]
        sub = GroupCounts(
            tuple(attrs), tuple(self.levels[i] for i in keep), index, table, self.has_label, sq
        )
        return sub, inverse

    def marginal(self, attrs: Sequence[str]) -> GroupCounts:
        """Counts for a subset of the attributes (summed over the others)."""
        return self.marginal_inverse(attrs)[0]

    def flat(self) -> tuple[list[tuple[str, ...]], np.ndarray]:
        """Observed groups (tuples of levels) and their ``(groups, 4)`` count matrix."""
        cols = [np.asarray(lv, dtype=object)[self.index[:, d]] for d, lv in enumerate(self.levels)]
        keys: list[tuple[str, ...]] = (
            list(zip(*cols)) if cols else [() for _ in range(self.n_groups)]
        )
        return keys, self.table

    def by_last(self) -> tuple[GroupCounts, np.ndarray]:
        """Counts over all attributes but the last, and ``(groups, last levels, 4)`` counts."""
        sub, inverse = self.marginal_inverse(self.attributes[:-1])
        out = np.zeros((sub.n_groups, len(self.levels[-1]), 4), dtype=self.table.dtype)
        out[inverse, self.index[:, -1]] = self.table  # (group, last level) pairs are unique
        return sub, out

    def dense(self) -> np.ndarray:
        """The full cube ``(len(levels[0]), ..., 4)``: for small tables and tests only."""
        cube = np.zeros((*(len(lv) for lv in self.levels), 4), dtype=self.table.dtype)
        cube[tuple(self.index.T)] = self.table
        return cube

    def bootstrap(self, *, replicates: int, seed: int) -> np.ndarray:
        """Row-bootstrap draws of ``table``: ``(replicates, groups, 4)``.

        Weighted counts: the Poisson bootstrap of the weighted rows
        (:func:`probes.stats.bootstrap_weighted_counts`), float sums of weights.

        The draws equal those of a multinomial over the full cube in C order (a
        zero-probability cell draws nothing and uses no randomness; the trailing
        zero cell the cube would end with is kept, so the random stream matches).
        """
        from probes.stats import bootstrap_counts, bootstrap_weighted_counts

        if self.sq is not None:  # weighted: Poisson bootstrap of the rows, on the counts
            return bootstrap_weighted_counts(self.table, self.sq, replicates=replicates, seed=seed)
        corner = [len(lv) - 1 for lv in self.levels]
        pad = self.n_groups > 0 and list(self.index[-1]) != corner
        cells = np.concatenate([self.table.ravel(), [0]]) if pad else self.table.ravel()
        draws = bootstrap_counts(cells, replicates=replicates, seed=seed)
        return draws[:, : self.table.size].reshape(replicates, self.n_groups, 4)

    def sorted_levels(self, key: Callable[[str], Any]) -> GroupCounts:
        """The same counts with each attribute's levels ordered by ``key``."""
        levels, index = [], self.index.copy()
        for d, lv in enumerate(self.levels):
            order = sorted(range(len(lv)), key=lambda i, lv=lv: key(lv[i]))  # type: ignore[misc]
            rank = np.empty(len(lv), dtype=np.int64)
            rank[order] = np.arange(len(lv))
            index[:, d] = rank[self.index[:, d]]
            levels.append(tuple(lv[i] for i in order))
        rows = np.lexsort(index.T[::-1]) if index.shape[1] else np.arange(self.n_groups)
        sq = None if self.sq is None else self.sq[rows]
        return GroupCounts(
            self.attributes, tuple(levels), index[rows], self.table[rows], self.has_label, sq
        )

    def __add__(self, other: GroupCounts) -> GroupCounts:
        """Merge counts from two chunks/shards (levels aligned by label)."""
        if self.attributes != other.attributes:
            raise ValueError("cannot add counts over different attributes")
        if (self.sq is None) != (other.sq is None):
            raise ValueError("cannot add weighted and unweighted counts")
        levels = tuple(
            tuple(sorted(set(a) | set(b), key=_level_key))
            for a, b in zip(self.levels, other.levels)
        )
        parts = []
        for part in (self, other):
            remap = [
                np.array([lv.index(x) for x in plv], dtype=np.int64)
                for lv, plv in zip(levels, part.levels)
            ]
            cols = [m[part.index[:, d]] for d, m in enumerate(remap)]
            parts.append(np.stack(cols, axis=1) if cols else part.index)
        both = np.concatenate(parts)
        table = np.concatenate([self.table, other.table])
        index, inverse = lexsorted(both, [len(lv) for lv in levels])
        summed = group_sum(table, inverse, len(index)) if len(index) else table
        sq = None
        if self.sq is not None and other.sq is not None:
            both_sq = np.concatenate([self.sq, other.sq])
            sq = group_sum(both_sq, inverse, len(index)) if len(index) else both_sq
        return GroupCounts(
            self.attributes, levels, index, summed, self.has_label and other.has_label, sq
        )

    def to_dict(self) -> dict[str, object]:
        """JSON form: ``groups`` are level indices, ``cells`` the four counts of each
        (weighted: float sums, and ``cells_sq`` the sums of squared weights)."""
        out: dict[str, object] = {
            "attributes": list(self.attributes),
            "levels": [list(lv) for lv in self.levels],
            "groups": self.index.tolist(),
            "cells": self.table.tolist(),
            "has_label": self.has_label,
        }
        if self.sq is not None:
            out["cells_sq"] = self.sq.tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> GroupCounts:
        """Read :meth:`to_dict` (and the older dense form: ``cells`` as a full cube)."""
        attributes: tuple[str, ...] = tuple(d["attributes"])  # type: ignore[arg-type]
        levels = tuple(tuple(lv) for lv in d["levels"])  # type: ignore[attr-defined]
        weighted = "cells_sq" in d
        cells = np.asarray(d["cells"], dtype=np.float64 if weighted else np.int64)
        if "groups" in d:
            index = np.asarray(d["groups"], dtype=np.int64).reshape(-1, len(attributes))
            sq = np.asarray(d["cells_sq"], dtype=np.float64).reshape(-1, 4) if weighted else None
            return cls(attributes, levels, index, cells.reshape(-1, 4), bool(d["has_label"]), sq)
        return _from_cube(attributes, levels, cells, bool(d["has_label"]))


def _from_cube(
    attributes: tuple[str, ...], levels: tuple[tuple[str, ...], ...], cube: np.ndarray, label: bool
) -> GroupCounts:
    flat = cube.reshape(-1, 4)
    observed = np.flatnonzero(flat.sum(axis=1) > 0)
    shape = tuple(len(lv) for lv in levels)
    index = np.stack(np.unravel_index(observed, shape), axis=1) if shape else observed[:, None]
    return GroupCounts(attributes, levels, index.astype(np.int64), flat[observed], label)


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


def limited_marginals(
    full: GroupCounts,
    sets: Sequence[Sequence[str]],
    max_groups: int | None,
    max_total: int | None = None,
) -> list[tuple[GroupCounts, np.ndarray]]:
    """The marginal (and inverse) of each attribute set, refusing as soon as one set has
    more than ``max_groups`` observed groups or the sets more than ``max_total`` in all.

    Larger sets come first (the full intersection costs nothing), so an audit that
    will be refused is refused before the expensive group-bys.
    """
    order = sorted(range(len(sets)), key=lambda i: -len(sets[i]))
    done: dict[int, tuple[GroupCounts, np.ndarray]] = {}
    total = 0
    for k, i in enumerate(order, start=1):
        sub, inverse = full.marginal_inverse(sets[i])
        name = "&".join(sub.attributes)
        if max_groups is not None and sub.n_groups > max_groups:
            message = MSG_TOO_MANY_GROUPS.format(
                attribute=name, count=sub.n_groups, limit=max_groups
            )
            raise ProbeError(message)
        done[i] = (sub, inverse)
        total += sub.n_groups
        if max_total is not None and total > max_total:
            largest = sorted((s for s, _ in done.values()), key=lambda c: -c.n_groups)[:3]
            shown = ", ".join(f"{'&'.join(c.attributes)!r} ({c.n_groups})" for c in largest)
            count = f"{total}" if k == len(sets) else f"at least {total}"
            raise ProbeError(
                MSG_TOO_MANY_TOTAL.format(
                    count=count, sets=f"{k} of {len(sets)}", limit=max_total, largest=shown
                )
            )
    return [done[i] for i in range(len(sets))]


def count_groups(
    frame: pd.DataFrame,
    attributes: Sequence[str],
    *,
    y_pred: np.ndarray,
    y_true: np.ndarray | None = None,
    max_levels: int | None = None,
    weight: np.ndarray | None = None,
) -> GroupCounts:
    """Count confusion cells for every observed group of the intersection of ``attributes``.

    ``max_levels`` (``policy.max_levels``) is checked per column before any key is built.
    ``weight`` (``dataset.weight``, validated non-negative and finite): each row adds its
    weight instead of one (float cells), and the squares are summed beside (Kish).
    """
    n = len(frame)
    if len(y_pred) != n:
        raise ValueError("y_pred length differs from the number of rows")
    if y_true is not None and len(y_true) != n:
        raise ValueError("y_true length differs from the number of rows")
    if weight is not None:
        weight = np.asarray(weight, dtype=np.float64)
        if len(weight) != n:
            raise ValueError("weight length differs from the number of rows")
    coded, levels = [], []
    for a in attributes:
        codes, lv = codes_of(frame[a])
        # declared categories may outnumber the observed ones: count those only when over
        if max_levels is not None and len(lv) > max_levels and np.unique(codes).size > max_levels:
            count = np.unique(codes).size
            message = MSG_TOO_MANY_LEVELS.format(
                field="dataset.protected", column=a, count=count, limit=max_levels
            )
            raise ProbeError(message)
        coded.append(codes)
        levels.append(lv)
    sizes = [max(len(lv), 1) for lv in levels]
    space = 4.0 * float(np.prod([float(s) for s in sizes]))
    sq: np.ndarray | None
    if n == 0:
        index = np.zeros((0, len(attributes)), dtype=np.int64)
        table = np.zeros((0, 4), dtype=np.int64 if weight is None else np.float64)
        sq = None if weight is None else np.zeros((0, 4))
    elif space <= max(n, DENSE_CELLS):
        index, table, sq = dense_pass(coded, sizes, y_pred, y_true, weight)
    else:
        index, table, sq = sparse_pass(coded, sizes, y_pred, y_true, weight)
    index, kept = drop_unused(index, levels)
    return GroupCounts(tuple(attributes), kept, index, table, y_true is not None, sq)


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
