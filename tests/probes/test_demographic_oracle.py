"""The demographic probe agrees with fairlearn's MetricFrame and aif360 on real data."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_score

from audit.sources.public import load_adult, load_german
from probes import ProbeInput
from probes.demographic import DemographicConfig, DemographicProbe

TOL = 1e-9


def _adult() -> pd.DataFrame:
    df = load_adult()
    feats = ["age", "education_num", "hours_per_week", "capital_gain", "capital_loss"]
    model = LogisticRegression(max_iter=500).fit(df[feats], df["income"])
    df["pred"] = model.predict(df[feats])
    return df


def _german() -> pd.DataFrame:
    df = load_german()
    feats = ["duration", "credit_amount", "installment_rate", "age"]
    model = LogisticRegression(max_iter=500).fit(df[feats], df["credit_risk"])
    df["pred"] = model.predict(df[feats])
    return df


DATASETS = {
    "adult": (_adult, "income", ["sex", "race", "age_group"]),
    "german": (_german, "credit_risk", ["sex", "age_group"]),
}
MALE = {"adult": "Male", "german": "male"}


@functools.cache
def _prepared(name: str) -> tuple[pd.DataFrame, str, list[str]]:
    loader, label, protected = DATASETS[name]
    return loader(), label, protected


def _run(df: pd.DataFrame, label: str, protected: list[str], male: str):
    frame = df[protected].astype(str).astype("category")
    data = ProbeInput(
        frame=frame,
        protected=tuple(protected),
        y_pred=df["pred"].to_numpy() == 1,
        y_true=df[label].to_numpy() == 1,
        privileged={"sex": male},
    )
    cfg = DemographicConfig(intersectional=True)
    return DemographicProbe().run(data=data, model=None, config=cfg).entries


def _oracle(df, label, attrs) -> pd.DataFrame:
    metrics = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "fnr": false_negative_rate,
        "precision": functools.partial(precision_score, zero_division=np.nan),
        "accuracy": accuracy_score,
        "count": lambda y, p: len(y),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fairlearn/sklearn warn on empty denominators
        mf = MetricFrame(
            metrics=metrics,
            y_true=df[label],
            y_pred=df["pred"],
            sensitive_features=df[list(attrs)].astype(str),
        )
        return mf.by_group


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_group_rates_match_metricframe(name: str) -> None:
    df, label, protected = _prepared(name)
    entries = _run(df, label, protected, MALE[name])
    assert {e.attribute for e in entries} >= {"&".join(protected), protected[0]}
    undefined_seen = 0
    for entry in entries:
        attrs = entry.model_extra["attributes"]
        oracle = _oracle(df, label, attrs)
        assert len(entry.groups) == int((oracle["count"].fillna(0) > 0).sum())
        for g in entry.groups:
            key = tuple(g["levels"][a] for a in attrs)
            row = oracle.loc[key if len(key) > 1 else key[0]]
            assert g["n"] == row["count"]
            y = df[label].to_numpy() == 1
            mask = np.ones(len(df), dtype=bool)
            for a in attrs:
                mask &= df[a].astype(str).to_numpy() == g["levels"][a]
            positives, negatives = int(y[mask].sum()), int((~y[mask]).sum())
            for metric in ("selection_rate", "tpr", "fpr", "fnr", "precision", "accuracy"):
                ours = g[metric]
                denominator = {
                    "tpr": positives,
                    "fnr": positives,
                    "fpr": negatives,
                    "precision": int(g["selected"]),
                }.get(metric, g["n"])
                if denominator == 0:
                    undefined_seen += 1
                    assert ours is None, (entry.attribute, g["group"], metric)
                else:
                    assert ours == pytest.approx(row[metric], abs=TOL), (g["group"], metric)
    if name == "adult":
        assert undefined_seen > 0  # the intersection has groups without positives


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_summary_matches_fairlearn(name: str) -> None:
    df, label, protected = _prepared(name)
    entries = {e.attribute: e for e in _run(df, label, protected, MALE[name])}
    for attr in protected:
        s = entries[attr].summary
        kw = {"y_true": df[label], "y_pred": df["pred"], "sensitive_features": df[attr]}
        assert s["demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(**kw), abs=TOL
        )
        assert s["demographic_parity_ratio"] == pytest.approx(
            demographic_parity_ratio(**kw), abs=TOL
        )
        assert s["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(**kw), abs=TOL
        )
        rates = [g["selection_rate"] for g in entries[attr].groups]
        for g in entries[attr].groups:
            ref = max(
                gg["selection_rate"] for gg in entries[attr].groups if not gg["insufficient_data"]
            )
            assert g["impact_ratio"] == pytest.approx(g["selection_rate"] / ref, abs=TOL)
        assert max(rates) - min(rates) == pytest.approx(s["demographic_parity_difference"])


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_privileged_metrics_match_aif360(name: str) -> None:
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    df, label, _ = _prepared(name)
    entries = {e.attribute: e for e in _run(df, label, DATASETS[name][2], MALE[name])}
    priv = entries["sex"].summary["privileged"]
    frame = pd.DataFrame(
        {"sex": (df["sex"] == MALE[name]).astype(float), "y": df[label].astype(float)}
    )
    truth = BinaryLabelDataset(df=frame, label_names=["y"], protected_attribute_names=["sex"])
    pred = truth.copy()
    pred.labels = df["pred"].to_numpy(dtype=float).reshape(-1, 1)
    m = ClassificationMetric(
        truth, pred, unprivileged_groups=[{"sex": 0.0}], privileged_groups=[{"sex": 1.0}]
    )
    assert priv["disparate_impact"] == pytest.approx(m.disparate_impact(), abs=TOL)
    assert priv["statistical_parity_difference"] == pytest.approx(
        m.statistical_parity_difference(), abs=TOL
    )
    assert priv["average_odds_difference"] == pytest.approx(m.average_odds_difference(), abs=TOL)
    assert priv["equal_opportunity_difference"] == pytest.approx(
        m.equal_opportunity_difference(), abs=TOL
    )
    assert priv["error_rate_difference"] == pytest.approx(m.error_rate_difference(), abs=TOL)
    assert entries["sex"].summary["generalized_entropy_index"] == pytest.approx(
        m.generalized_entropy_index(alpha=2), abs=TOL
    )
