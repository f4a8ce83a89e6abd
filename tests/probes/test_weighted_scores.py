"""Score metrics with ``dataset.weight``: AUC, calibration error, scoring rate, KS.

Oracles: scikit-learn's ``roc_auc_score(sample_weight=w)`` for the AUC; the calibration
error, weighted median and weighted KS distance recomputed by hand with pandas on the
weighted rows; integer weights against the rows repeated that many times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from probes.base import ProbeInput
from probes.demographic import DemographicConfig, DemographicProbe
from probes.scores import (
    auc,
    calibration_error,
    max_ks_distance,
    weighted_ks_distance,
    weighted_median,
)


def _data(seed: int, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    score = np.round(np.clip(rng.normal(0.5, 0.2, n) - 0.1 * (group == "b"), 0, 1), 2)  # ties
    y = rng.random(n) < score
    w = rng.uniform(0.2, 5.0, n)
    return pd.DataFrame({"g": group, "score": score, "y": y, "w": w})


@pytest.mark.parametrize("seed", range(6))
def test_weighted_auc_equals_sklearn_sample_weight(seed: int) -> None:
    df = _data(seed)
    for _, part in df.groupby("g"):
        s, y, w = part["score"].to_numpy(), part["y"].to_numpy(), part["w"].to_numpy()
        expected = roc_auc_score(y, s, sample_weight=w)
        assert auc(s, y, w) == pytest.approx(expected, abs=1e-12)
        assert auc(s, y, w) != pytest.approx(auc(s, y), abs=1e-6)  # the weights count
    ones = np.ones(len(df))
    assert auc(df["score"].to_numpy(), df["y"].to_numpy(), ones) == pytest.approx(
        auc(df["score"].to_numpy(), df["y"].to_numpy()), abs=1e-12
    )
    assert auc(np.array([0.1, 0.2]), np.array([True, True]), np.array([1.0, 2.0])) is None


def _by_hand_ece(df: pd.DataFrame, bins: int = 10) -> float:
    b = np.minimum((df["score"] * bins).astype(int), bins - 1)
    gap = (df["w"] * (df["score"] - df["y"].astype(float))).groupby(b).sum().abs().sum()
    return float(gap / df["w"].sum())


def test_weighted_calibration_error_by_hand() -> None:
    df = _data(1)
    got = calibration_error(df["score"].to_numpy(), df["y"].to_numpy(), weight=df["w"].to_numpy())
    assert got == pytest.approx(_by_hand_ece(df), abs=1e-12)
    plain = calibration_error(df["score"].to_numpy(), df["y"].to_numpy())
    assert plain == pytest.approx(_by_hand_ece(df.assign(w=1.0)), abs=1e-12)
    assert got != pytest.approx(plain, abs=1e-6)


def _weighted_ks_pair(a: pd.DataFrame, b: pd.DataFrame) -> float:
    points = np.union1d(a["score"], b["score"])

    def cdf(d: pd.DataFrame) -> np.ndarray:
        return np.array([d.loc[d["score"] <= x, "w"].sum() for x in points]) / d["w"].sum()

    return float(np.abs(cdf(a) - cdf(b)).max())


def test_weighted_ks_distance_is_the_largest_pairwise_weighted_ks() -> None:
    df = _data(2, n=300)
    parts = [p for _, p in df.groupby("g")]
    expected = max(
        _weighted_ks_pair(parts[i], parts[j])
        for i in range(len(parts))
        for j in range(i + 1, len(parts))
    )
    got = weighted_ks_distance([(p["score"].to_numpy(), p["w"].to_numpy()) for p in parts])
    assert got == pytest.approx(expected, abs=1e-12)
    equal = weighted_ks_distance([(p["score"].to_numpy(), np.ones(len(p))) for p in parts])
    assert equal == pytest.approx(max_ks_distance([p["score"].to_numpy() for p in parts]))


@pytest.mark.parametrize("seed", range(8))
def test_weighted_median_is_the_median_of_the_repeated_rows(seed: int) -> None:
    """np.median of the rows repeated by their (integer) weights: the midpoint of the
    two middle values when the weights split exactly in half, whatever the parity."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=50 + seed)
    counts = rng.integers(1, 5, size=values.size)
    repeated = np.repeat(values, counts)
    assert weighted_median(values, counts.astype(float)) == np.median(repeated)
    assert weighted_median(values, counts / 4) == np.median(repeated)  # only ratios matter


def test_weighted_median_with_weights_of_one_is_numpy_median() -> None:
    values = np.array([4.0, 1.0, 3.0, 2.0])
    assert weighted_median(values, np.ones(4)) == np.median(values) == 2.5
    assert weighted_median(values[:3], np.ones(3)) == np.median(values[:3]) == 3.0
    # rows of zero weight are left out, also as the upper neighbour of a midpoint
    assert weighted_median(np.array([1.0, 2.0, 5.0, 9.0]), np.array([1.0, 0.0, 1.0, 0.0])) == 3.0
    # a split at exactly one half up to rounding (0.1 + 0.2 != 0.3) is still a midpoint
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3])) == 2.5
    assert weighted_median(np.array([1.0, 2.0]), np.array([1.0, 3.0])) == 2.0


def test_demographic_probe_weights_every_score_metric() -> None:
    df = _data(3, n=2000)
    df["g"] = df["g"].astype("category")
    # integer weights: the probe equals the same audit on the rows repeated
    df["w"] = np.random.default_rng(0).integers(1, 4, len(df)).astype(float)
    rep = df.loc[df.index.repeat(df["w"].astype(int))].reset_index(drop=True)
    cfg = DemographicConfig()

    def run(frame: pd.DataFrame, weight: np.ndarray | None) -> dict[str, dict]:
        data = ProbeInput(
            frame=frame[["g"]],
            protected=("g",),
            y_pred=frame["score"].to_numpy() > 0.5,
            y_true=frame["y"].to_numpy(),
            score=frame["score"].to_numpy(),
            weight=weight,
        )
        entry = DemographicProbe().run(data=data, config=cfg).entries[0]
        return {"summary": entry.summary, **{g["group"]: g for g in entry.groups}}

    weighted = run(df, df["w"].to_numpy())
    repeated = run(rep, None)
    plain = run(df, None)
    keys = ("auc", "calibration_error", "mean_score", "scoring_rate", "scoring_impact_ratio")
    for group in ("a", "b", "c"):
        for k in keys:
            assert weighted[group][k] == pytest.approx(repeated[group][k], abs=1e-12), (group, k)
        assert weighted[group]["auc"] != pytest.approx(plain[group]["auc"], abs=1e-6)
    # the weighted median is the repeated rows' np.median (midpoint of the middle two)
    for k in ("median_score", "score_ks_max"):
        assert weighted["summary"][k] == pytest.approx(repeated["summary"][k], abs=1e-12), k
