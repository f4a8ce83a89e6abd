"""``score_ks_max``: the largest two-sample KS statistic over every pair of groups.

Computed without visiting the pairs (sup over the pooled points of the spread of the
groups' ECDFs), it must equal scipy's ``ks_2samp`` over all pairs (the oracle), ties,
empty groups and scipy's exact-mode rounding included.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from probes import scores
from probes.scores import max_ks_distance


def _pairwise(samples: list[np.ndarray]) -> float | None:
    ks = [
        stats.ks_2samp(a, b).statistic
        for i, a in enumerate(samples)
        for b in samples[i + 1 :]
        if a.size and b.size
    ]
    return float(max(ks)) if ks else None


@pytest.mark.parametrize("seed", range(40))
def test_equals_the_pairwise_maximum(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(scores, "KS_BLOCK_CELLS", int(rng.integers(1, 200)))  # many blocks
    samples = [
        np.round(rng.normal(rng.random(), 1, rng.integers(0, 60)), 1)  # ties, empty groups
        for _ in range(rng.integers(1, 9))
    ]
    assert max_ks_distance(samples) == _pairwise(samples)


def test_many_small_groups_cost_no_pairs() -> None:
    rng = np.random.default_rng(0)
    samples = [rng.random(rng.integers(1, 4)) for _ in range(2000)]  # 2 million pairs
    got = max_ks_distance(samples)
    assert got == 1.0  # two groups whose scores do not overlap exist among 2,000 tiny ones
    first = _pairwise(samples[:40])
    assert first is not None and got >= first
