"""The dataset probe with ``dataset.weight``: pre-training metrics and CDDL on weighted
label counts.

Oracles: aif360's ``BinaryLabelDatasetMetric`` with ``instance_weights`` (base rates,
statistical parity difference = -DPL of the unprivileged facet); integer weights
against the rows repeated that many times (every metric); Kish effective sizes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from probes.base import ProbeInput
from probes.dataset import DatasetProbe, DatasetProbeConfig

METRICS = ("positive_rate", "share", "CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL")


def _data(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], size=n, p=[0.4, 0.6])
    dept = rng.choice(["eng", "ops", "sales"], size=n)
    y = rng.random(n) < 0.3 + 0.2 * (dept == "eng") + 0.1 * (sex == "M")
    w = rng.integers(1, 5, size=n).astype(float) * np.where(y & (sex == "F"), 2.0, 1.0)
    return pd.DataFrame({"sex": sex, "dept": dept, "y": y, "w": w})


def _run(df: pd.DataFrame, weight: np.ndarray | None) -> dict[str, dict]:
    data = ProbeInput(
        frame=df[["sex", "dept"]].astype("category"),
        protected=("sex",),
        y_true=df["y"].to_numpy(),
        weight=weight,
    )
    config = DatasetProbeConfig(strata="dept", min_group_size=1)
    (entry,) = DatasetProbe().run(data=data, config=config).entries
    return {g["group"]: g for g in entry.groups}


def test_integer_weights_equal_the_repeated_rows() -> None:
    df = _data()
    weighted = _run(df, df["w"].to_numpy())
    repeated = _run(df.loc[df.index.repeat(df["w"].astype(int))].reset_index(drop=True), None)
    plain = _run(df, None)
    for group in ("F", "M"):
        for m in METRICS:
            assert weighted[group][m] == pytest.approx(repeated[group][m], abs=1e-12), (group, m)
        assert weighted[group]["n"] == pytest.approx(df.loc[df["sex"] == group, "w"].sum())
        w = df.loc[df["sex"] == group, "w"]
        assert weighted[group]["n_effective"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
        assert weighted[group]["DPL"] != pytest.approx(plain[group]["DPL"], abs=1e-3)
        # the CI and test see the Kish size, not the summed weights: wider than repeated rows
        lo, hi = weighted[group]["positive_rate_ci"]
        rlo, rhi = repeated[group]["positive_rate_ci"]
        assert hi - lo > rhi - rlo


def test_weighted_label_metrics_equal_aif360_instance_weights() -> None:
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import BinaryLabelDatasetMetric

    df = _data(seed=3)
    df["w"] = np.random.default_rng(1).uniform(0.3, 4.0, len(df))
    groups = _run(df, df["w"].to_numpy())
    frame = pd.DataFrame({"sex": (df["sex"] == "M").astype(float), "y": df["y"].astype(float)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = BinaryLabelDataset(df=frame, label_names=["y"], protected_attribute_names=["sex"])
        ds.instance_weights = df["w"].to_numpy()
        m = BinaryLabelDatasetMetric(
            ds, unprivileged_groups=[{"sex": 0.0}], privileged_groups=[{"sex": 1.0}]
        )
        expected = {
            "F": m.base_rate(privileged=False),
            "M": m.base_rate(privileged=True),
            "spd": m.statistical_parity_difference(),
        }
    assert groups["F"]["positive_rate"] == pytest.approx(expected["F"], abs=1e-12)
    assert groups["M"]["positive_rate"] == pytest.approx(expected["M"], abs=1e-12)
    # Clarify's DPL of facet F (vs the rest, M) = p_M - p_F = -SPD(unprivileged F)
    assert groups["F"]["DPL"] == pytest.approx(-expected["spd"], abs=1e-12)
