"""The sparse counter: only observed groups, equal to a plain group-by, merges by addition.

The reference is pandas' ``groupby`` over the rows (every observed combination of
levels and its four confusion cells); both counting passes (the direct one over a
small key space and the ``np.unique`` one) must agree with it, for every attribute
set, whatever the chunking, and the bootstrap must equal a multinomial over the
full cube (what it was before counts were sparse).
"""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from probes import counts as counts_mod
from probes.base import ProbeError, ProbeInput
from probes.counts import GroupCounts, attribute_sets, count_groups
from probes.demographic import DemographicConfig, DemographicProbe
from probes.stats import bootstrap_counts

ATTRS = ["a", "b", "c", "d"]


def _data(n: int, levels: list[int], seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            name: pd.Categorical(rng.choice([f"{name}{i:02d}" for i in range(k)], size=n))
            for name, k in zip(ATTRS, levels)
        }
    )
    return frame, rng.random(n) < 0.4, rng.random(n) < 0.5


def _reference(
    frame: pd.DataFrame, attrs: list[str], y_pred: np.ndarray, y_true: np.ndarray
) -> dict[tuple[str, ...], list[int]]:
    cell = 2 * y_true.astype(int) + y_pred.astype(int)
    df = frame[attrs].astype(str).assign(cell=cell)
    table = df.groupby([*attrs, "cell"]).size().unstack("cell", fill_value=0)
    table = table.reindex(columns=range(4), fill_value=0)
    return {(k if isinstance(k, tuple) else (k,)): list(map(int, v)) for k, v in table.iterrows()}


def _as_dict(counts: GroupCounts) -> dict[tuple[str, ...], list[int]]:
    keys, table = counts.flat()
    return {k: list(map(int, row)) for k, row in zip(keys, table)}


@pytest.mark.parametrize("dense_cells", [0, 1 << 40], ids=["unique-pass", "bincount-pass"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_counts_equal_a_groupby_for_every_attribute_set(
    monkeypatch: pytest.MonkeyPatch, dense_cells: int, seed: int
) -> None:
    monkeypatch.setattr(counts_mod, "DENSE_CELLS", dense_cells)
    frame, y_pred, y_true = _data(3000, [7, 5, 11, 3], seed)
    full = count_groups(frame, ATTRS, y_pred=y_pred, y_true=y_true)
    assert full.rows == 3000 and (full.table.sum(axis=1) > 0).all()
    for attrs in attribute_sets(ATTRS, True):
        sub = full.marginal(list(attrs))
        assert _as_dict(sub) == _reference(frame, list(attrs), y_pred, y_true)
        keys = sub.flat()[0]
        assert keys == sorted(keys)  # the full cube's C order, restricted to observed groups
    # a reordered subset is the transposed cube, as before
    swapped = full.marginal(["c", "a"]).dense()
    assert (swapped == np.swapaxes(full.marginal(["a", "c"]).dense(), 0, 1)).all()


def test_the_two_passes_agree_and_unseen_categories_are_dropped() -> None:
    frame, y_pred, y_true = _data(500, [4, 6, 3, 2], 5)
    frame["a"] = frame["a"].cat.add_categories(["never"])
    dense = count_groups(frame, ATTRS, y_pred=y_pred, y_true=y_true)
    counts_mod_dense = counts_mod.DENSE_CELLS
    try:
        counts_mod.DENSE_CELLS = 0
        sparse = count_groups(frame, ATTRS, y_pred=y_pred, y_true=y_true)
    finally:
        counts_mod.DENSE_CELLS = counts_mod_dense
    assert "never" not in dense.levels[0] and dense.levels == sparse.levels
    assert (dense.index == sparse.index).all() and (dense.table == sparse.table).all()


@pytest.mark.parametrize("dense_cells", [0, 1 << 40], ids=["unique-pass", "bincount-pass"])
def test_chunks_merge_to_the_whole(monkeypatch: pytest.MonkeyPatch, dense_cells: int) -> None:
    monkeypatch.setattr(counts_mod, "DENSE_CELLS", dense_cells)
    frame, y_pred, y_true = _data(4000, [9, 4, 6, 5], 11)
    whole = count_groups(frame, ATTRS, y_pred=y_pred, y_true=y_true)
    cuts = [0, 37, 1200, 1201, 2950, 4000]
    total = None
    for lo, hi in zip(cuts, cuts[1:]):
        part = frame.iloc[lo:hi].copy()
        for a in ATTRS:  # each chunk sees only its own levels, in its own order
            part[a] = part[a].astype(str)
        c = count_groups(part, ATTRS, y_pred=y_pred[lo:hi], y_true=y_true[lo:hi])
        c = GroupCounts.from_dict(json.loads(json.dumps(c.to_dict())))  # as shards travel
        total = c if total is None else c + total
    assert total is not None
    assert total.levels == whole.levels
    assert (total.index == whole.index).all() and (total.table == whole.table).all()


def test_the_old_dense_form_still_reads() -> None:
    frame, y_pred, y_true = _data(800, [3, 4, 2, 5], 3)
    counts = count_groups(frame, ATTRS, y_pred=y_pred, y_true=y_true)
    legacy = {
        "attributes": ATTRS,
        "levels": [list(lv) for lv in counts.levels],
        "cells": counts.dense().tolist(),
        "has_label": True,
    }
    back = GroupCounts.from_dict(legacy)
    assert (back.index == counts.index).all() and (back.table == counts.table).all()


@pytest.mark.parametrize("seed", range(6))
def test_bootstrap_equals_the_multinomial_over_the_full_cube(seed: int) -> None:
    frame, y_pred, y_true = _data(60, [4, 3, 3, 2], seed)  # many empty cube cells
    counts = count_groups(frame, ATTRS, y_pred=y_pred, y_true=y_true)
    cube = counts.dense()
    dense_draws = bootstrap_counts(cube, replicates=40, seed=seed)
    sparse_draws = counts.bootstrap(replicates=40, seed=seed)
    expected = dense_draws.reshape(40, -1, 4)[
        :, np.ravel_multi_index(counts.index.T, cube.shape[:-1])
    ]
    assert (sparse_draws == expected).all()


def test_five_columns_of_fifty_levels_count_in_little_memory() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    frame = pd.DataFrame({f"p{i}": rng.integers(0, 50, size=n).astype(str) for i in range(5)})
    y = rng.random(n) < 0.5
    tracemalloc.start()
    full = count_groups(frame, list(frame.columns), y_pred=y, y_true=y)
    subs = [full.marginal(list(s)) for s in attribute_sets(list(frame.columns), True)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert full.n_groups <= n and all(s.rows == n for s in subs)
    assert peak < 20 * 2**20  # the dense cube would be 50**5 * 4 cells = 9.3 GiB


def test_max_groups_refuses_the_intersection_by_name() -> None:
    frame, y_pred, y_true = _data(3000, [20, 20, 2, 2], 4)
    data = ProbeInput(frame=frame, protected=tuple(ATTRS[:2]), y_pred=y_pred, max_groups=100)
    probe = DemographicProbe()
    single = probe.run(data=data, config=DemographicConfig(attributes=["a", "b"]))
    assert [e.attribute for e in single.entries] == ["a", "b"]  # 20 groups each: fine
    config = DemographicConfig(attributes=["a", "b"], intersectional=True)
    with pytest.raises(
        ProbeError, match=r"'a&b' has \d+ observed groups, more than policy.max_groups=100"
    ):
        probe.run(data=data, config=config)


def test_max_levels_refuses_the_column_before_counting() -> None:
    frame, y_pred, _ = _data(500, [30, 2, 2, 2], 8)
    with pytest.raises(
        ProbeError, match="column 'a' has 30 distinct values, more than policy.max_levels=10"
    ):
        count_groups(frame, ATTRS, y_pred=y_pred, max_levels=10)


def test_max_total_groups_refuses_a_probe_over_budget_naming_the_largest_sets() -> None:
    frame, y_pred, _ = _data(3000, [20, 20, 10, 2], 6)
    data = ProbeInput(frame=frame, protected=tuple(ATTRS[:3]), y_pred=y_pred, max_total_groups=500)
    probe = DemographicProbe()
    assert len(probe.run(data=data, config=DemographicConfig()).entries) == 3  # 50 groups
    with pytest.raises(ProbeError, match=r"more than policy.max_total_groups=500") as err:
        probe.run(data=data, config=DemographicConfig(intersectional=True))
    assert "of 7 attribute sets counted; largest: 'a&b&c' (" in str(err.value)
