"""Tabular flip test: with a model (re-prediction) and without one (Clarify's kNN FT)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from pydantic import ValidationError
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from probes import ProbeError, ProbeInput, get_probe
from probes.counterfactual_tabular import CounterfactualTabularConfig, knn_features
from probes.models import load_model

PROBE = get_probe("counterfactual-tabular")


def _data(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            # "m" is the most frequent level, so the default reference.
            "sex": rng.choice(["f", "m"], size=n, p=[0.4, 0.6]),
        }
    )


def _fit(frame: pd.DataFrame, *, use_sex: bool, tmp_path: Path) -> tuple[object, object]:
    y = (frame.x1 + 2.0 * (frame.sex == "m") + 0.3 * frame.x2 > 1.0).astype(int)
    transformers: list[tuple[str, object, list[str]]] = [("num", StandardScaler(), ["x1", "x2"])]
    if use_sex:
        transformers.append(("cat", OneHotEncoder(), ["sex"]))
    est = make_pipeline(ColumnTransformer(transformers, remainder="drop"), LogisticRegression())
    est.fit(frame, y)
    path = tmp_path / f"model_{use_sex}.skops"
    sio.dump(est, path)
    return est, load_model(kind="sklearn", path=path)


def _input(frame: pd.DataFrame, **kw: object) -> ProbeInput:
    typed = frame.assign(sex=frame.sex.astype("category"))
    return ProbeInput(frame=typed, protected=("sex",), **kw)  # type: ignore[arg-type]


def _run(data: ProbeInput, model: object, **cfg: object):  # type: ignore[no-untyped-def]
    config = CounterfactualTabularConfig.model_validate({"kind": "counterfactual-tabular", **cfg})
    return PROBE().run(data=data, model=model, config=config)  # type: ignore[arg-type]


def test_model_using_the_attribute_fails_the_flip_test(tmp_path: Path) -> None:
    frame = _data()
    est, model = _fit(frame, use_sex=True, tmp_path=tmp_path)
    result = _run(_input(frame), model, attribute="sex", examples=5)
    (entry,) = result.entries
    extra = entry.model_extra or {}
    assert entry.kind == "counterfactual-tabular" and entry.attribute == "sex"
    assert extra["reference_group"] == "m"
    groups = {g["group"]: g for g in entry.groups}
    ref, f = groups["m"], groups["f"]
    assert ref["flip_rate"] == 0 and ref["score_gap"] == 0 and ref["p_value"] == 1.0

    # Oracle: re-predict with scikit-learn directly on hand-made counterfactual frames.
    as_f, as_m = frame.assign(sex="f"), frame.assign(sex="m")
    flips = est.predict(as_f) != est.predict(as_m)  # type: ignore[attr-defined]
    gap = est.predict_proba(as_f)[:, 1] - est.predict_proba(as_m)[:, 1]  # type: ignore[attr-defined]
    assert f["n"] == len(frame)
    assert f["flip_rate"] == pytest.approx(flips.mean())
    assert f["score_gap"] == pytest.approx(gap.mean())
    assert f["flip_rate"] > 0.2 and f["score_gap"] < -0.1
    assert f["p_value"] < 0.01 and f["flip_p_value"] < 0.01
    lo, hi = f["flip_rate_ci"]
    assert lo < f["flip_rate"] < hi
    assert f["score_gap_ci"][1] < 0
    assert f["flips_to_not_selected"] > 0 and f["flips_to_selected"] == 0

    pairs = {(p["group"], p["counterfactual"]): p for p in extra["pairs"]}
    assert set(pairs) == {("f", "m"), ("m", "f")}
    assert pairs[("f", "m")]["n"] == int((frame.sex == "f").sum())
    assert pairs[("f", "m")]["mean_score_change"] > 0 > pairs[("m", "f")]["mean_score_change"]

    ex = extra["examples"]
    assert len(ex) == 5
    deltas = [abs(e["delta"]) for e in ex]
    assert deltas == sorted(deltas, reverse=True) and deltas[0] > 0
    assert ex[0]["counterfactual"] != ex[0]["group"]
    assert ex[0]["delta"] == pytest.approx(ex[0]["counterfactual_score"] - ex[0]["score"])
    assert set(ex[0]["input"]) == {"x1", "x2", "sex"}
    json.loads(result.model_dump_json())  # serialisable, no NaN


def test_model_not_using_the_attribute_passes(tmp_path: Path) -> None:
    frame = _data(seed=1)
    _, model = _fit(frame, use_sex=False, tmp_path=tmp_path)  # sex is passed, then dropped
    (entry,) = _run(_input(frame), model, attribute="sex").entries
    for g in entry.groups:
        assert g["flip_rate"] == 0 and g["score_gap"] == 0 and g["p_value"] == 1.0
    assert entry.summary["flip_rate_any"] == 0
    assert (entry.model_extra or {})["examples"] == []


def test_reference_values_and_sampling(tmp_path: Path) -> None:
    frame = _data(seed=2)
    _, model = _fit(frame, use_sex=True, tmp_path=tmp_path)
    data = _input(frame, seed=7)
    (entry,) = _run(data, model, attribute="sex", reference="f").entries
    assert (entry.model_extra or {})["reference_group"] == "f"
    assert {g["group"]: g["score_gap"] for g in entry.groups}["m"] > 0
    a = _run(data, model, attribute="sex", max_rows=50).entries[0]
    b = _run(data, model, attribute="sex", max_rows=50).entries[0]
    assert a.summary["rows_evaluated"] == 50 and a.summary["sampled"] is True
    assert a.groups == b.groups
    with pytest.raises(ProbeError, match=r"probes\[\]\.values: \['x'\].*f, m"):
        _run(data, model, attribute="sex", values=["f", "x"])
    with pytest.raises(ProbeError, match=r"probes\[\]\.attribute: column 'race'"):
        _run(data, model, attribute="race")
    with pytest.raises(ValidationError):
        CounterfactualTabularConfig.model_validate({"kind": "counterfactual-tabular"})


def test_unknown_rows_are_counterfactually_assigned(tmp_path: Path) -> None:
    frame = _data(seed=3)
    _, model = _fit(frame, use_sex=True, tmp_path=tmp_path)
    typed = frame.assign(sex=frame.sex.mask(frame.index < 20, "unknown"))
    (entry,) = _run(_input(typed), model, attribute="sex").entries
    assert [g["group"] for g in entry.groups] == ["f", "m"]
    assert all(g["n"] == len(frame) for g in entry.groups)
    # Their observed prediction is unknown (NaN input), so they are in no pair/example.
    pairs = {(p["group"], p["counterfactual"]): p["n"] for p in (entry.model_extra or {})["pairs"]}
    assert pairs[("f", "m")] + pairs[("m", "f")] == len(frame) - 20
    assert all(e["group"] != "unknown" for e in (entry.model_extra or {})["examples"])


# --- predictions only: SageMaker Clarify's kNN flip test ---------------------------------


def _knn_frame(planted: bool, n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x1": rng.uniform(size=n),
            "x2": rng.uniform(size=n),
            "sex": rng.choice(["f", "m"], size=n, p=[0.4, 0.6]),
        }
    )
    cut = np.where((frame.sex == "f") & planted, 1.4, 1.0)
    y_pred = (frame.x1 + frame.x2 > cut).to_numpy()
    frame["approved"] = y_pred.astype(int)  # the prediction column: must not be a feature
    return frame, y_pred


def test_knn_flip_test_detects_planted_disparity() -> None:
    frame, y_pred = _knn_frame(planted=True)
    (entry,) = _run(_input(frame, y_pred=y_pred), None, attribute="sex").entries
    assert entry.summary["mode"] == "knn" and entry.summary["features"] == ["x1", "x2"]
    f = {g["group"]: g for g in entry.groups}["f"]
    assert f["FT"] > 0.1 and f["p_value"] < 0.01 and f["flip_rate"] > 0.1
    assert f["flips_to_selected"] > f["flips_to_not_selected"]

    # Oracle: Clarify's own recipe (KNeighborsClassifier, k=5, fit on the other group).
    config = CounterfactualTabularConfig(kind="counterfactual-tabular", attribute="sex")
    x, _ = knn_features(_input(frame, y_pred=y_pred), config)
    d = (frame.sex == "f").to_numpy()
    knn = KNeighborsClassifier(n_neighbors=5).fit(x[~d], y_pred[~d])
    vote = knn.predict(x[d])
    f_plus = int((~y_pred[d] & vote).sum())
    f_minus = int((y_pred[d] & ~vote).sum())
    assert f["FT"] == pytest.approx((f_plus - f_minus) / d.sum())
    assert f["flip_rate"] == pytest.approx((f_plus + f_minus) / d.sum())


def test_knn_flip_test_without_disparity() -> None:
    frame, y_pred = _knn_frame(planted=False, seed=1)
    score = (frame.x1 + frame.x2).to_numpy() / 2
    (entry,) = _run(_input(frame, y_pred=y_pred, score=score), None, attribute="sex").entries
    for g in entry.groups:
        # Only boundary rows can disagree with their neighbours' vote. (No p-value
        # check: neighbouring rows share votes, so McNemar's independence is approximate.)
        assert abs(g["FT"]) < 0.05 and g["flip_rate"] < 0.1
        assert abs(g["score_gap"]) < 0.03
    assert (entry.model_extra or {})["reference_group"] is None


def test_knn_needs_predictions_and_features() -> None:
    frame, _ = _knn_frame(planted=False)
    with pytest.raises(ProbeError, match=r"dataset\.prediction"):
        _run(_input(frame), None, attribute="sex")
    only = frame[["sex"]].assign(c=1.0)
    with pytest.raises(ProbeError, match=r"probes\[\]\.features"):
        _run(_input(only, y_pred=np.ones(len(only), bool)), None, attribute="sex")
