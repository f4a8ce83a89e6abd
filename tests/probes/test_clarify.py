"""Clarify metrics from counts against smclarify, aif360, scipy and row-level definitions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from probes.clarify import (
    POST_TRAINING,
    PRE_TRAINING,
    between_group_generalized_entropy_index,
    cddpl,
    conditional_demographic_disparity_arrays,
    generalized_entropy_index,
    one_vs_rest,
    post_training_metrics,
    pre_training_metrics,
)
from probes.counts import GroupCounts, count_groups

# ---------------------------------------------------------------- golden values from smclarify
# Rows built from these counts ([tn, fp, fn, tp] per stratum) and run through
# smclarify 0.5 (amazon-sagemaker-clarify), facet = the "d" rows. smclarify is
# not a dependency (it pulls in boto3/s3fs), so its outputs are recorded here.
FACET_BY_STRATUM = np.array([[150, 20, 60, 70], [180, 30, 40, 90], [82, 13, 18, 47]])
REST_BY_STRATUM = np.array([[400, 90, 80, 430], [700, 150, 120, 830], [430, 100, 65, 605]])
SMCLARIFY = {
    "DPPL": 0.21375,
    "DI": 0.6122448979591837,
    "DCA": -0.23771730914588063,
    "DCR": -0.14555631471067432,
    "RD": 0.23866377753701695,
    "SD": 0.049186602870813334,
    "DAR": 0.07913832199546478,
    "DRR": -0.07500919745624635,
    "AD": 0.07499999999999996,
    "TE": 1.0936041083099908,
    "CDDPL": 0.11353987903480066,
    "CI": 0.6666666666666666,
    "DPL": 0.12624999999999997,
    "KL": 0.03234195670295344,
    "JS": 0.008021338225074635,
    "LP": 0.17854446224960321,
    "TVD": 0.12624999999999997,
    "KS": 0.12624999999999997,
    "CDDL": 0.0674174057423538,
    "GE": 0.08118834042113603,
}


def _labels(cells: np.ndarray) -> np.ndarray:
    """[tn, fp, fn, tp] -> label counts [negatives, positives]."""
    return np.stack([cells[..., 0] + cells[..., 1], cells[..., 2] + cells[..., 3]], axis=-1)


def test_post_training_matches_smclarify() -> None:
    got = post_training_metrics(facet=FACET_BY_STRATUM.sum(0), rest=REST_BY_STRATUM.sum(0))
    assert set(got) == set(POST_TRAINING)
    for name in POST_TRAINING:
        assert got[name] == pytest.approx(SMCLARIFY[name], abs=1e-12), name


def test_pre_training_matches_smclarify() -> None:
    got = pre_training_metrics(
        facet=_labels(FACET_BY_STRATUM.sum(0)), rest=_labels(REST_BY_STRATUM.sum(0))
    )
    assert set(got) == set(PRE_TRAINING)
    for name in PRE_TRAINING:
        assert got[name] == pytest.approx(SMCLARIFY[name], abs=1e-12), name


def test_cdd_and_ge_match_smclarify() -> None:
    got = cddpl(facet_by_stratum=FACET_BY_STRATUM, rest_by_stratum=REST_BY_STRATUM)
    assert got == pytest.approx(SMCLARIFY["CDDPL"], abs=1e-12)
    f, r = _labels(FACET_BY_STRATUM), _labels(REST_BY_STRATUM)
    cddl = conditional_demographic_disparity_arrays(
        facet_pos=f[:, 1], facet_neg=f[:, 0], rest_pos=r[:, 1], rest_neg=r[:, 0]
    )
    assert float(cddl) == pytest.approx(SMCLARIFY["CDDL"], abs=1e-12)
    all_cells = FACET_BY_STRATUM.sum(0) + REST_BY_STRATUM.sum(0)
    assert generalized_entropy_index(all_cells) == pytest.approx(SMCLARIFY["GE"], abs=1e-12)


# ---------------------------------------------------------------- seeded synthetic data


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """20k applicants; group B gets fewer favorable labels and predictions (planted)."""
    rng = np.random.default_rng(7)
    n = 20_000
    group = rng.choice(["A", "B", "C"], size=n, p=[0.55, 0.30, 0.15])
    dept = rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2])
    p_label = 0.5 - 0.15 * (group == "B") + 0.2 * (dept == "x") - 0.1 * (dept == "z")
    y = rng.random(n) < p_label
    p_pred = np.where(y, 0.8, 0.15) - 0.1 * (group == "B") + 0.05 * (group == "C")
    yhat = rng.random(n) < p_pred
    return pd.DataFrame({"group": group, "dept": dept, "y": y, "yhat": yhat})


def _cells(df: pd.DataFrame) -> np.ndarray:
    return np.bincount(2 * df["y"].to_numpy(int) + df["yhat"].to_numpy(int), minlength=4)


def _aif360(df: pd.DataFrame, facet: str) -> Any:
    """aif360 ClassificationMetric with unprivileged = the facet, privileged = the rest."""
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    base = pd.DataFrame({"f": (df["group"] == facet).astype(float), "y": df["y"].astype(float)})
    truth = BinaryLabelDataset(
        df=base,
        label_names=["y"],
        protected_attribute_names=["f"],
        favorable_label=1.0,
        unfavorable_label=0.0,
    )
    pred = truth.copy(deepcopy=True)
    pred.labels = df["yhat"].to_numpy(float).reshape(-1, 1)
    return ClassificationMetric(
        truth, pred, unprivileged_groups=[{"f": 1.0}], privileged_groups=[{"f": 0.0}]
    )


@pytest.mark.parametrize("facet", ["A", "B", "C"])
def test_post_training_against_aif360(frame: pd.DataFrame, facet: str) -> None:
    got = post_training_metrics(
        facet=_cells(frame[frame.group == facet]), rest=_cells(frame[frame.group != facet])
    )
    m = _aif360(frame, facet)
    d, a = False, True  # aif360's privileged flag: facet = unprivileged

    def ratio(num: Any, den: Any, priv: bool) -> float:
        return num(privileged=priv) / den(privileged=priv)

    expected = {
        "DPPL": -m.statistical_parity_difference(),
        "DI": m.disparate_impact(),
        "DCA": ratio(m.num_positives, m.num_pred_positives, a)
        - ratio(m.num_positives, m.num_pred_positives, d),
        "DCR": ratio(m.num_negatives, m.num_pred_negatives, d)
        - ratio(m.num_negatives, m.num_pred_negatives, a),
        "RD": -m.equal_opportunity_difference(),
        "SD": m.difference(m.true_negative_rate),
        "DAR": -m.difference(m.positive_predictive_value),
        "DRR": m.difference(m.negative_predictive_value),
        "AD": -m.difference(m.accuracy),
        "TE": ratio(m.num_false_negatives, m.num_false_positives, d)
        - ratio(m.num_false_negatives, m.num_false_positives, a),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    if facet == "B":  # the planted disadvantage shows with Clarify's signs
        dppl, di, rd = got["DPPL"], got["DI"], got["RD"]
        assert dppl is not None and di is not None and rd is not None
        assert dppl > 0.1 and di < 0.8 and rd > 0.05


def test_one_vs_rest_equals_scalar_calls(frame: pd.DataFrame) -> None:
    counts = count_groups(frame, ["group"], y_pred=frame.yhat.to_numpy(), y_true=frame.y.to_numpy())
    keys, cells = counts.flat()
    batch = one_vs_rest(cells)
    for i, key in enumerate(keys):
        sub = frame[frame.group == key[0]]
        single = post_training_metrics(facet=_cells(sub), rest=_cells(frame) - _cells(sub))
        assert batch[i] == pytest.approx(single, abs=1e-12)


def test_counts_merge_by_addition(frame: pd.DataFrame) -> None:
    """Metrics of summed shard counts equal the metrics of the whole data."""

    def counts(df: pd.DataFrame) -> GroupCounts:
        return count_groups(df, ["group"], y_pred=df.yhat.to_numpy(), y_true=df.y.to_numpy())

    merged = counts(frame.iloc[:7_000]) + counts(frame.iloc[7_000:])
    assert one_vs_rest(merged.flat()[1]) == one_vs_rest(counts(frame).flat()[1])


def test_pre_training_against_aif360_and_scipy(frame: pd.DataFrame) -> None:
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import BinaryLabelDatasetMetric

    for facet in ("A", "B", "C"):
        d, a = frame[frame.group == facet], frame[frame.group != facet]
        ld = np.bincount(d.y.to_numpy(int), minlength=2)
        la = np.bincount(a.y.to_numpy(int), minlength=2)
        got = pre_training_metrics(facet=ld, rest=la)
        base = pd.DataFrame({"f": (frame.group == facet).astype(float), "y": frame.y.astype(float)})
        ds = BinaryLabelDataset(df=base, label_names=["y"], protected_attribute_names=["f"])
        m = BinaryLabelDatasetMetric(
            ds, unprivileged_groups=[{"f": 1.0}], privileged_groups=[{"f": 0.0}]
        )
        p_a, p_d = la / la.sum(), ld / ld.sum()
        assert got["DPL"] == pytest.approx(-m.statistical_parity_difference(), abs=1e-12)
        n_d, n_a = m.num_instances(privileged=False), m.num_instances(privileged=True)
        assert got["CI"] == pytest.approx((n_a - n_d) / (n_a + n_d), abs=1e-12)
        assert got["KL"] == pytest.approx(entropy(p_a, p_d), abs=1e-12)
        assert got["JS"] == pytest.approx(jensenshannon(p_a, p_d) ** 2, abs=1e-12)
        assert got["LP"] == pytest.approx(np.linalg.norm(p_a - p_d), abs=1e-12)
        assert got["TVD"] == pytest.approx(0.5 * np.abs(p_a - p_d).sum(), abs=1e-12)
        assert got["KS"] == pytest.approx(np.abs(p_a - p_d).max(), abs=1e-12)


def _cdd_rows(df: pd.DataFrame, facet: str, outcome: str) -> float:
    """Clarify's CDD straight from its documented formula, row by row."""
    total = 0.0
    for _, s in df.groupby("dept"):
        acc, rej = s[s[outcome]], s[~s[outcome]]
        a_share = (acc.group == facet).mean() if len(acc) else 0.0
        r_share = (rej.group == facet).mean() if len(rej) else 0.0
        total += len(s) * (r_share - a_share)
    return total / len(df)


@pytest.mark.parametrize("facet", ["A", "B"])
def test_cddpl_and_cddl_against_row_level_definition(frame: pd.DataFrame, facet: str) -> None:
    strata = sorted(frame.dept.unique())
    fs = np.stack([_cells(frame[(frame.group == facet) & (frame.dept == k)]) for k in strata])
    rs = np.stack([_cells(frame[(frame.group != facet) & (frame.dept == k)]) for k in strata])
    got = cddpl(facet_by_stratum=fs, rest_by_stratum=rs)
    assert got == pytest.approx(_cdd_rows(frame, facet, "yhat"), abs=1e-12)
    f, r = _labels(fs), _labels(rs)
    cddl = conditional_demographic_disparity_arrays(
        facet_pos=f[:, 1], facet_neg=f[:, 0], rest_pos=r[:, 1], rest_neg=r[:, 0]
    )
    assert float(cddl) == pytest.approx(_cdd_rows(frame, facet, "y"), abs=1e-12)


# ---------------------------------------------------------------- generalized entropy


@pytest.mark.parametrize("alpha", [2, 1, 3, 0.5])
def test_generalized_entropy_index_equals_aif360(frame: pd.DataFrame, alpha: float) -> None:
    m = _aif360(frame, "B")
    assert generalized_entropy_index(_cells(frame), alpha=alpha) == pytest.approx(
        m.generalized_entropy_index(alpha=alpha), abs=1e-9
    )


@pytest.mark.parametrize("alpha", [2, 1])
def test_between_group_entropy_equals_aif360(frame: pd.DataFrame, alpha: float) -> None:
    m = _aif360(frame, "B")
    cells = np.stack([_cells(frame[frame.group == "B"]), _cells(frame[frame.group != "B"])])
    assert between_group_generalized_entropy_index(cells, alpha=alpha) == pytest.approx(
        m.between_group_generalized_entropy_index(alpha=alpha), abs=1e-9
    )


def test_generalized_entropy_alpha_zero_and_degenerate() -> None:
    cells = np.array([30, 10, 0, 60])  # no false negatives: every benefit > 0
    b = np.repeat([1.0, 2.0, 0.0, 1.0], cells)
    expected = -np.mean(np.log(b / b.mean()))
    assert generalized_entropy_index(cells, alpha=0) == pytest.approx(expected, abs=1e-12)
    assert generalized_entropy_index(np.array([30, 10, 5, 60]), alpha=0) is None  # infinite
    assert generalized_entropy_index(np.array([0, 0, 9, 0])) is None  # all false negatives
    assert generalized_entropy_index(np.zeros(4)) is None
    assert generalized_entropy_index(np.array([5, 0, 0, 5])) == 0.0  # everyone benefit 1
    # groups are pooled: (groups, 4) gives the index over all individuals
    two = np.array([[10, 3, 4, 8], [20, 1, 6, 9]])
    assert generalized_entropy_index(two) == generalized_entropy_index(two.sum(0))


# ---------------------------------------------------------------- degenerate inputs


def _finite_or_none(d: dict[str, float | None]) -> bool:
    return all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in d.values())


def test_facet_without_positives() -> None:
    got = post_training_metrics(facet=np.array([50, 0, 10, 0]), rest=np.array([40, 10, 5, 45]))
    assert _finite_or_none(got)
    assert got["DI"] == 0.0 and got["DPPL"] == pytest.approx(0.55)
    assert got["DCA"] is None  # no predicted positives in the facet
    assert got["DAR"] is None and got["TE"] is None  # precision and FN/FP undefined
    assert got["RD"] == pytest.approx(45 / 50)
    pre = pre_training_metrics(facet=np.array([60, 0]), rest=np.array([50, 50]))
    assert pre["KL"] is None  # P_d(positive) = 0 < P_a(positive): KL is infinite
    assert pre["JS"] is not None and pre["TVD"] == pytest.approx(0.5)


def test_rest_without_selections_and_empty_groups() -> None:
    got = post_training_metrics(facet=np.array([5, 5, 5, 5]), rest=np.array([10, 0, 10, 0]))
    assert got["DI"] is None and got["DPPL"] == pytest.approx(-0.5)
    empty = post_training_metrics(facet=np.zeros(4), rest=np.array([10, 5, 5, 10]))
    assert all(v is None for v in empty.values())
    assert all(
        v is None for v in pre_training_metrics(facet=np.zeros(2), rest=np.array([3, 4])).values()
    )
    assert cddpl(facet_by_stratum=np.zeros((2, 4)), rest_by_stratum=np.ones((2, 4))) is None
    no_pos = np.array([[5, 0, 0, 0], [7, 0, 0, 0]])
    assert cddpl(facet_by_stratum=no_pos, rest_by_stratum=no_pos) is None


def test_one_vs_rest_with_single_group_is_all_none() -> None:
    [only] = one_vs_rest(np.array([[10, 5, 3, 7]]))
    assert all(v is None for v in only.values())


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[tn, fp, fn, tp\]"):
        post_training_metrics(facet=np.array([1, 2, 3]), rest=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="length-2"):
        pre_training_metrics(facet=np.array([1, 2, 3, 4]), rest=np.array([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="strata, 4"):
        cddpl(facet_by_stratum=np.ones((2, 4)), rest_by_stratum=np.ones((3, 4)))
