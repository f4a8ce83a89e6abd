"""lda-search weighted (``dataset.weight``) and by a race proxy (``dataset.proxy``), end to end.

- Weighted: every holdout figure of the model in use equals its weighted oracle
  (fairlearn's MetricFrame selection rates with ``sample_weight``, scikit-learn's
  weighted AUC), the demographic probe's weighted rates agree, and the saved best
  alternative's weighted rates are the ones reported for it.
- Proxied (``attribute: race_proxy``): groups are probability-weighted with the BISG
  posteriors (computed here directly), the same rates as the demographic probe's
  ``race_proxy`` entry; candidates never take the proxy's inputs (surname, ZIP) as
  decision inputs; a train file goes through the same proxy for the reductions, and
  a split run works the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fairlearn.metrics import MetricFrame, selection_rate
from sklearn.metrics import roc_auc_score

from audit import run_audit
from probes.models.sklearn import load_sklearn_estimator

pytestmark = pytest.mark.slow  # each search fits tens of candidates


def _entry(results: dict[str, Any], kind: str, attribute: str) -> dict[str, Any]:
    return next(p for p in results["probes"] if p["kind"] == kind and p["attribute"] == attribute)


def test_a_weighted_search_is_weighted_everywhere(tmp_path: Path) -> None:
    from tests.probes.lda_data import german_case

    spec = german_case(tmp_path, planted=True)
    frame = pd.read_csv(tmp_path / "holdout.csv")
    rng = np.random.default_rng(4)
    # heavier weights on approved-looking women: weighted and unweighted rates differ
    w = rng.uniform(0.2, 3.0, len(frame)) * np.where(frame["sex"] == "female", 1.5, 1.0)
    frame["w"] = np.round(w, 6)
    frame.to_csv(tmp_path / "holdout.csv", index=False)
    spec["dataset"]["weight"] = "w"
    spec["probes"][0].update(reductions=False, hyperparameters=False, seeds=0, bootstrap=50)
    spec["probes"].append({"kind": "demographic", "attributes": ["sex"]})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    results = run_audit(tmp_path / "spec.yaml", tmp_path / "out", store=False)

    entry = _entry(results, "lda-search", "sex")
    base = entry["baseline"]
    model = load_sklearn_estimator(tmp_path / "model.skops")
    x = frame[list(model.feature_names_in_)]
    score = model.predict_proba(x)[:, 1]
    selected = (score >= 0.5).astype(int)
    y = (frame["credit_risk"] == 1).astype(int).to_numpy()
    oracle = MetricFrame(
        metrics=selection_rate,
        y_true=y,
        y_pred=selected,
        sensitive_features=frame["sex"],
        sample_params={"sample_weight": frame["w"].to_numpy()},
    ).by_group
    for group, rate in oracle.items():
        assert base["groups"][group]["selection_rate"] == pytest.approx(rate, abs=1e-12)
    assert base["min_impact_ratio"] == pytest.approx(oracle.min() / oracle.max(), abs=1e-12)
    unweighted = frame.assign(s=selected).groupby("sex")["s"].mean()
    assert abs(base["min_impact_ratio"] - unweighted.min() / unweighted.max()) > 1e-3
    assert base["performance"] == pytest.approx(
        roc_auc_score(y, score, sample_weight=frame["w"]), abs=1e-12
    )
    demo = _entry(results, "demographic", "sex")
    for g in demo["groups"]:
        assert base["groups"][g["group"]]["selection_rate"] == pytest.approx(
            g["selection_rate"], abs=1e-12
        )
    best = entry["best"]
    assert best is not None
    saved = load_sklearn_estimator(tmp_path / "out" / entry["summary"]["best_model_file"])
    chosen = saved.predict_proba(x)[:, 1] >= best["threshold"]
    for group in ("female", "male"):
        rows = (frame["sex"] == group).to_numpy()
        expected = np.average(chosen[rows], weights=frame["w"].to_numpy()[rows])
        assert best["groups"][group]["selection_rate"] == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def tables() -> Any:
    from audit.sources.census import fetch, load_tables

    fetch()
    return load_tables(levels=("zcta",))


FEATURES = ["credit_score", "tenure"]


def _proxy_case(root: Path, tables: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Applicants with a race gap in credit scores (planted through the pool), a label that
    follows the score, and a model in use on the score; race withheld."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from audit.examples.lending_proxy import generate_pool

    pool = generate_pool(tables, n=6000, seed=2, apr_gap=0.4, apr_gap_via="credit_score")
    rng = np.random.default_rng(2)
    pool["tenure"] = rng.integers(0, 30, len(pool))
    pool["repaid"] = (pool["credit_score"] + rng.normal(0, 40, len(pool)) > 690).astype(int)
    pool = pool.drop(columns=["true_race", "apr", "approved"])
    train, hold = pool.iloc[:3000], pool.iloc[3000:].reset_index(drop=True)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        train[FEATURES], train["repaid"]
    )
    root.mkdir(parents=True, exist_ok=True)
    train.to_csv(root / "train.csv", index=False)
    hold.to_csv(root / "applicants.csv", index=False)
    sio.dump(model, root / "model.skops")
    return train, hold


def _proxy_spec(**probe: Any) -> dict[str, Any]:
    return {
        "name": "lda-proxy",
        "domain": "lending",
        "seed": 3,
        "dataset": {
            "path": "applicants.csv",
            "label": "repaid",
            "protected": [],
            "reference": {"race_proxy": "white"},
            "proxy": {"method": "bisg", "surname": "last_name", "zcta": "zip"},
        },
        "model": {"kind": "sklearn", "path": "model.skops"},
        "probes": [
            {"kind": "demographic"},
            {
                "kind": "lda-search",
                "attribute": "race_proxy",
                "hyperparameters": False,
                "seeds": 0,
                "bootstrap": 50,
                "n_jobs": 2,
                **probe,
            },
        ],
    }


def test_a_proxied_search_uses_probability_weighted_groups(tmp_path: Path, tables: Any) -> None:
    from probes.proxy import RACES, bisg

    _, hold = _proxy_case(tmp_path, tables)
    spec = _proxy_spec(train="train.csv", bounds=[0.05], grid_size=3)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    results = run_audit(tmp_path / "spec.yaml", tmp_path / "out", store=False)
    entry = _entry(results, "lda-search", "race_proxy")
    summary = entry["summary"]
    assert summary["proxy_groups"] is True and summary["training"] == "file"
    assert summary["holdout_rows"] == len(hold) and summary["recipes_failed"] == 0
    assert any(a["family"] == "reduction" for a in entry["alternatives"])  # trained on draws

    post = bisg(tables, surname=hold["last_name"], geography=hold["zip"], level="zcta")
    p = post.posteriors[list(RACES)].to_numpy()
    model = load_sklearn_estimator(tmp_path / "model.skops")
    selected = model.predict_proba(hold[FEATURES])[:, 1] >= 0.5
    base = entry["baseline"]
    rates = {race: float(p[:, i] @ selected / p[:, i].sum()) for i, race in enumerate(RACES)}
    for race, rate in rates.items():
        assert base["groups"][race]["selection_rate"] == pytest.approx(rate, abs=1e-12)
    compared = [r for r in RACES if base["groups"][r]["compared"]]
    assert "white" in compared and len(compared) >= 3
    expected = min(rates[r] / rates["white"] for r in compared)  # dataset.reference
    assert base["min_impact_ratio"] == pytest.approx(expected, abs=1e-12)
    demo = _entry(results, "demographic", "race_proxy")
    for g in demo["groups"]:
        assert rates[g["group"]] == pytest.approx(g["selection_rate"], abs=1e-9)

    # the proxy's inputs are never decision inputs: only the model's own features
    assert not any(
        name in ("drop:last_name", "drop:zip")
        for name in (a["name"] for a in entry["alternatives"])
    )
    if entry["best"] is not None:
        saved = load_sklearn_estimator(tmp_path / "out" / summary["best_model_file"])
        assert list(saved.feature_names_in_) == FEATURES


def test_a_proxied_search_on_a_split_and_its_refusals(tmp_path: Path, tables: Any) -> None:
    from audit.errors import AuditInputError

    _, hold = _proxy_case(tmp_path, tables)
    spec = _proxy_spec(holdout_size=0.4, reductions=False)
    (tmp_path / "split.yaml").write_text(yaml.safe_dump(spec))
    results = run_audit(tmp_path / "split.yaml", store=False)
    summary = _entry(results, "lda-search", "race_proxy")["summary"]
    assert summary["training"] == "split" and summary["proxy_groups"] is True
    assert summary["holdout_rows"] + summary["training_rows"] == len(hold)

    no_proxy = {k: v for k, v in spec["dataset"].items() if k not in ("proxy", "reference")}
    bad = {**spec, "dataset": {**no_proxy, "protected": ["tenure"]}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(AuditInputError, match="race_proxy"):
        run_audit(tmp_path / "bad.yaml", store=False)
