"""lda-search candidates are fitted with ``dataset.weight``: the classic check.

A search whose training and holdout rows carry integer weights equals the search on
the rows repeated that many times (no weights): same candidates, same point figures.
Every step that takes ``sample_weight`` gets it (here a scaler and the classifier);
fairlearn's reductions, which take no row weights, get the rows repeated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml

from audit import run_audit
from audit.errors import AuditInputError
from audit.examples.lending import CATEGORICAL, LABEL, NUMERIC
from probes.lda.candidates import CandidateSpec, fit, repeats, weight_params
from tests.probes.lda_data import german_case

pytestmark = pytest.mark.slow  # two searches of ~20 candidates

FEATURES = [*CATEGORICAL, *NUMERIC, "proxy"]


def _model() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL)],
        remainder="passthrough",
    )
    clf = LogisticRegression(max_iter=5000, tol=1e-10)
    return Pipeline([("encode", encode), ("scale", StandardScaler()), ("classifier", clf)])


def _case(root: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The planted German case with integer weights (1-3, heavier on women who repaid)."""
    spec = german_case(root, planted=True)
    train, hold = pd.read_csv(root / "train.csv"), pd.read_csv(root / "holdout.csv")
    rng = np.random.default_rng(11)
    for frame in (train, hold):
        heavy = (frame["sex"] == "female") & (frame[LABEL] == 1)
        frame["w"] = 1 + heavy.astype(int) + rng.integers(0, 2, len(frame))
    model = _model().fit(train[FEATURES], train[LABEL])
    sio.dump(model, root / "model.skops")
    spec["probes"][0].update(
        seeds=0, hyperparameters=False, drop_features=False, grid_size=3, bounds=[0.05],
        threshold_steps=2, bootstrap=20, n_jobs=1,
    )  # fmt: skip
    return train, hold, spec


def _search(root: Path, spec: dict[str, Any], train: pd.DataFrame, hold: pd.DataFrame) -> Any:
    train.to_csv(root / "train.csv", index=False)
    hold.to_csv(root / "holdout.csv", index=False)
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    results = run_audit(root / "spec.yaml", root / "out", store=False)
    return next(p for p in results["probes"] if p["kind"] == "lda-search")


def test_integer_weights_equal_repeated_rows(tmp_path: Path) -> None:
    train, hold, spec = _case(tmp_path)
    weighted = _search(tmp_path, {**spec, "dataset": {**spec["dataset"], "weight": "w"}},
                       train, hold)  # fmt: skip
    rep_train = train.loc[train.index.repeat(train["w"])].drop(columns="w")
    rep_hold = hold.loc[hold.index.repeat(hold["w"])].drop(columns="w")
    repeated = _search(tmp_path, spec, rep_train, rep_hold)

    assert weighted["summary"]["training_weights"] == "all"
    assert repeated["summary"]["training_weights"] == "none"
    assert weighted["summary"]["training_rows"] == len(train)
    assert repeated["summary"]["training_rows"] == int(train["w"].sum())
    names = [a["name"] for a in weighted["alternatives"]]
    assert names == [a["name"] for a in repeated["alternatives"]]
    assert any(n.startswith("exponentiated_gradient") for n in names)
    assert any(n.startswith("grid_search") for n in names)
    for key in ("performance", "min_impact_ratio"):
        assert weighted["baseline"][key] == pytest.approx(repeated["baseline"][key], abs=1e-9)
    for a, b in zip(weighted["alternatives"], repeated["alternatives"], strict=True):
        for key in ("performance", "min_impact_ratio"):
            assert a[key] == pytest.approx(b[key], abs=1e-6), (a["name"], key)
    assert weighted["summary"]["best"] == repeated["summary"]["best"]


def test_weights_reach_every_step_that_takes_them_and_change_the_fit(tmp_path: Path) -> None:
    train, _, _ = _case(tmp_path)
    x, y, w = train[FEATURES], train[LABEL].to_numpy(), train["w"].to_numpy(dtype=float)
    assert set(weight_params(_model(), w)) == {"scale__sample_weight", "classifier__sample_weight"}
    s = train["sex"].astype(str).to_numpy()
    refit = CandidateSpec("refit", "refit")
    kw: dict[str, Any] = {"x": x, "y": y, "sensitive": s, "excluded": ("proxy",), "seed": 0}
    (plain,) = fit(refit, _model(), **kw)
    (heavy,) = fit(refit, _model(), **kw, sample_weight=w)
    n = w.astype(int)
    repeated = {"x": x.loc[x.index.repeat(n)], "y": np.repeat(y, n), "sensitive": np.repeat(s, n)}
    (rep,) = fit(refit, _model(), **{**kw, **repeated})
    coef = [c.estimator[-1][-1].coef_ for c in (plain, heavy, rep)]
    assert np.allclose(coef[1], coef[2], atol=1e-6)  # weighted == repeated
    assert not np.allclose(coef[0], coef[1], atol=1e-3)  # and the weights matter


def test_repeats_only_integer_weights_within_the_limit() -> None:
    assert repeats(np.array([1.0, 2.0, 0.0])).tolist() == [1, 2, 0]  # type: ignore[union-attr]
    assert repeats(np.array([1.0, 2.5])) is None  # not integers: reductions unweighted
    assert repeats(np.array([1.0, 100.0])) is None  # over 20x the rows
    assert repeats(None) is None


def test_train_file_weights_checked_and_non_integer_weights_said(tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier

    with pytest.raises(ValueError, match="KNeighborsClassifier.fit takes no sample_weight"):
        weight_params(KNeighborsClassifier(), np.ones(3))
    train, hold, spec = _case(tmp_path)
    spec = {**spec, "dataset": {**spec["dataset"], "weight": "w"}}
    spec["probes"][0].update(reductions=True, grid_size=2, bounds=[0.1])
    bad = train.assign(w=train["w"].astype(float))
    bad.loc[3, "w"] = -1.0
    with pytest.raises(AuditInputError, match=r"probes\[\]\.train: column 'w' \(dataset.weight\) "
                       r"has 1 missing, negative or non-finite value"):  # fmt: skip
        _search(tmp_path, spec, bad, hold)
    entry = _search(tmp_path, spec, train.assign(w=train["w"] * 0.5), hold)
    assert entry["summary"]["training_weights"] == "except_reductions"
    unweighted = _search(tmp_path, spec, train.drop(columns="w"), hold)
    assert unweighted["summary"]["training_weights"] == "none"  # a train file without it
