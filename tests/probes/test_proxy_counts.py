"""Probability-weighted proxy counts equal the one count path over rows expanded six-fold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probes.counts import count_groups
from probes.proxy import RACES
from probes.proxy_groups import PROXY_ATTRIBUTE, posterior_counts


@pytest.mark.parametrize("labelled", [False, True])
def test_posterior_counts_equal_the_expanded_count_path(labelled: bool) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    post = rng.dirichlet(np.full(len(RACES), 0.4), size=n)
    post[:50, -1] = 0.0  # hard zeros in some rows
    post[:50] /= post[:50].sum(axis=1, keepdims=True)
    y_pred = rng.random(n) < 0.6
    y_true = rng.random(n) < 0.5 if labelled else None
    base = rng.uniform(0.2, 3.0, n)
    got = posterior_counts(post, y_pred, y_true, base)
    frame = pd.DataFrame(
        {PROXY_ATTRIBUTE: pd.Categorical.from_codes(np.tile(np.arange(len(RACES)), n), RACES)}
    )
    want = count_groups(
        frame,
        [PROXY_ATTRIBUTE],
        y_pred=np.repeat(y_pred, len(RACES)),
        y_true=None if y_true is None else np.repeat(y_true, len(RACES)),
        weight=(base[:, None] * post).ravel(),
    )
    assert got.levels == want.levels and got.attributes == want.attributes
    np.testing.assert_array_equal(got.index, want.index)
    np.testing.assert_allclose(got.table, want.table, rtol=1e-10)
    assert got.sq is not None and want.sq is not None
    np.testing.assert_allclose(got.sq, want.sq, rtol=1e-10)
    assert got.has_label is labelled


def test_a_group_without_posterior_mass_is_not_listed() -> None:
    post = np.zeros((4, len(RACES)))
    post[:, 0], post[:2, 1] = 1.0, 0.0
    post[2:, 0], post[2:, 2] = 0.5, 0.5
    got = posterior_counts(post, np.array([1, 0, 1, 1], bool), None, np.ones(4))
    assert got.levels == (("white", "hispanic"),)
    np.testing.assert_allclose(got.table.sum(axis=1), [3.0, 1.0])
