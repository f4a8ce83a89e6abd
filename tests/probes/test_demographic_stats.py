"""Statistics a reviewer can trust: planted disparity found, none invented, CIs cover."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from probes import ProbeInput
from probes.demographic import DemographicConfig, DemographicProbe
from probes.stats import bootstrap_counts, holm, proportion_ci, two_proportion_pvalue


def _sample(seed: int, n: int, rates: dict[str, float]) -> ProbeInput:
    rng = np.random.default_rng(seed)
    groups = rng.choice(list(rates), size=n)
    p = np.vectorize(rates.get)(groups)
    y_pred = rng.random(n) < p
    neutral = rng.choice(["x", "y", "z"], size=n)
    frame = pd.DataFrame({"sex": groups, "region": neutral}).astype("category")
    return ProbeInput(frame=frame, protected=("sex", "region"), y_pred=y_pred)


def _entries(data: ProbeInput, **cfg: Any) -> dict[str, dict]:
    res = DemographicProbe().run(data=data, model=None, config=DemographicConfig(**cfg))
    return {e.attribute: e.model_dump() for e in res.entries}


def test_planted_disparity_is_flagged_and_neutral_attribute_is_not() -> None:
    # one fixed draw; any single draw of a null attribute falls below alpha 5% of the
    # time, which the level test below checks over many draws
    entries = _entries(_sample(3, 4000, {"F": 0.30, "M": 0.45}))
    sex = {g["group"]: g for g in entries["sex"]["groups"]}
    assert entries["sex"]["reference_group"] == "M"
    assert sex["F"]["p_value_adjusted"] < 0.05
    assert sex["F"]["impact_ratio"] < 0.8
    assert entries["sex"]["summary"]["selection_rate_homogeneity_p_value"] < 0.05
    # the attribute with no disparity: the omnibus test (no reference-group selection) is calm
    assert entries["region"]["summary"]["selection_rate_homogeneity_p_value"] > 0.05


def test_omnibus_test_holds_its_level_with_three_equal_groups() -> None:
    trials = 300
    flagged = sum(
        _entries(_sample(seed, 900, {"F": 0.4, "M": 0.4}))["region"]["summary"][
            "selection_rate_homogeneity_p_value"
        ]
        < 0.05
        for seed in range(trials)
    )
    assert flagged / trials < 0.09


def test_false_positive_rate_of_the_test_is_near_alpha() -> None:
    flagged = 0
    trials = 200
    for seed in range(trials):
        sex = _entries(_sample(seed, 600, {"F": 0.4, "M": 0.4}))["sex"]["groups"]
        flagged += any(g["p_value"] is not None and g["p_value"] < 0.05 for g in sex)
    # the reference is the higher-rate group, which makes the test slightly liberal;
    # it must still stay near the nominal 5% level
    assert flagged / trials < 0.12


@pytest.mark.parametrize("method", ["wilson", "exact"])
def test_confidence_intervals_cover_at_nominal_level(method: str) -> None:
    rng = np.random.default_rng(7)
    covered = 0
    trials = 2000
    for _ in range(trials):
        n = int(rng.integers(20, 400))
        p = float(rng.uniform(0.05, 0.95))
        k = rng.binomial(n, p)
        lo, hi = proportion_ci(np.array([k]), np.array([n]), method=method)  # type: ignore[arg-type]
        covered += bool(lo[0] <= p <= hi[0])
    assert 0.93 <= covered / trials <= 0.99 if method == "wilson" else covered / trials >= 0.95


def test_small_groups_get_exact_test_and_insufficient_data() -> None:
    data = _sample(3, 3000, {"F": 0.3, "M": 0.5, "X": 0.0})
    entry = _entries(data, min_group_size=2000)["sex"]
    assert all(g["insufficient_data"] for g in entry["groups"])
    tiny = two_proportion_pvalue(0, 4, 5, 6)
    assert tiny is not None and 0 < tiny < 0.05  # Fisher: expected counts < 5


def test_holm_adjustment() -> None:
    adjusted = holm([0.01, None, 0.04, 0.03])
    assert adjusted[1] is None
    assert adjusted[0] == pytest.approx(0.03)
    assert adjusted[3] == pytest.approx(0.06)
    assert adjusted[2] == pytest.approx(0.06)  # monotone: never below the previous step


def test_multinomial_bootstrap_equals_row_bootstrap_in_distribution() -> None:
    cells = np.array([[50, 30], [10, 10]])
    draws = bootstrap_counts(cells, replicates=20000, seed=0)
    assert draws.shape == (20000, 2, 2)
    assert (draws.sum(axis=(1, 2)) == cells.sum()).all()
    assert draws.mean(axis=0) == pytest.approx(cells, rel=0.02)
    rng = np.random.default_rng(1)
    rows = np.repeat(np.arange(4), cells.ravel())
    row_boot = np.stack(
        [np.bincount(rng.choice(rows, rows.size), minlength=4) for _ in range(4000)]
    )
    assert draws.reshape(-1, 4).std(axis=0) == pytest.approx(row_boot.std(axis=0), rel=0.1)


def test_bootstrap_cis_are_reported_and_deterministic() -> None:
    data = _sample(5, 5000, {"F": 0.3, "M": 0.45})
    a = _entries(data, bootstrap=300)["sex"]
    b = _entries(data, bootstrap=300)["sex"]
    assert a == b
    f = next(g for g in a["groups"] if g["group"] == "F")
    lo, hi = f["selection_rate_ci_bootstrap"]
    assert lo < f["selection_rate"] < hi
    wl, wh = f["selection_rate_ci"]
    assert abs((hi - lo) - (wh - wl)) < 0.01  # bootstrap and Wilson agree at this n
    assert a["summary"]["bootstrap_replicates"] == 300


def test_chunks_merge_by_adding_counts() -> None:
    from probes.counts import count_groups

    data = _sample(9, 3000, {"F": 0.3, "M": 0.45})
    assert data.y_pred is not None
    whole = count_groups(data.frame, ["sex", "region"], y_pred=data.y_pred)
    half = 1500
    a = count_groups(data.frame.iloc[:half], ["sex", "region"], y_pred=data.y_pred[:half])
    b = count_groups(data.frame.iloc[half:], ["sex", "region"], y_pred=data.y_pred[half:])
    merged = a + b
    assert merged.levels == whole.levels
    assert (merged.dense() == whole.dense()).all()
    assert (whole.marginal(["region", "sex"]).dense() == np.swapaxes(whole.dense(), 0, 1)).all()


def test_vectorised_pvalues_equal_the_scalar_test() -> None:
    from probes.stats import two_proportion_pvalues

    k = np.array([0, 3, 40, 200, 7])
    n = np.array([0, 5, 100, 400, 9])
    got = two_proportion_pvalues(k, n, 60, 120)
    want = [two_proportion_pvalue(int(a), int(b), 60, 120) for a, b in zip(k, n)]
    assert got[0] is None and want[0] is None
    assert got[1:] == pytest.approx(want[1:], rel=1e-12)
