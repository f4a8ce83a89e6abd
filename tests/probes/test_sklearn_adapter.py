"""scikit-learn adapter: skops round trip, type allowlist, labels, features, dispatch errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from probes.base import ProbeError
from probes.models import ModelLoadError, UnsafeModelError, load_model
from probes.models.sklearn import SklearnAdapter


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "sex": rng.choice(["f", "m"], size=n),
        }
    )


def _pipeline() -> object:
    ct = ColumnTransformer(
        [("num", StandardScaler(), ["x1", "x2"]), ("cat", OneHotEncoder(), ["sex"])]
    )
    return make_pipeline(ct, LogisticRegression())


def test_skops_round_trip(tmp_path: Path) -> None:
    frame = _frame()
    y = np.where(frame.x1 + (frame.sex == "m") > 0.5, "good", "bad")
    est = _pipeline().fit(frame, y)  # type: ignore[attr-defined]
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    model = load_model(kind="sklearn", path=path, favorable_label="good")
    assert isinstance(model, SklearnAdapter)
    assert model.kind == "sklearn"
    assert model.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.features == ("x1", "x2", "sex")
    np.testing.assert_array_equal(model.predict(frame), est.predict(frame) == "good")
    good = list(est.classes_).index("good")
    scores = model.score(frame)
    assert scores is not None  # the pipeline ends in a classifier with predict_proba
    np.testing.assert_allclose(scores, est.predict_proba(frame)[:, good])
    sel, score = model.predict_with_score(frame)
    assert sel.dtype == bool and score is not None


def test_int_classes_match_favorable_label_canonically(tmp_path: Path) -> None:
    frame = _frame()
    est = _pipeline().fit(frame, (frame.x1 > 0).astype(int))  # type: ignore[attr-defined]
    path = tmp_path / "m.skops"
    sio.dump(est, path)
    for fav in (1, "1", 1.0, True):
        model = load_model(kind="sklearn", path=path, favorable_label=fav)
        np.testing.assert_array_equal(model.predict(frame), est.predict(frame) == 1)  # type: ignore[union-attr]
    zero = load_model(kind="sklearn", path=path, favorable_label=0)
    np.testing.assert_array_equal(zero.predict(frame), est.predict(frame) == 0)  # type: ignore[union-attr]
    with pytest.raises(ModelLoadError, match=r"dataset\.favorable_label: 'yes'.*classes"):
        load_model(kind="sklearn", path=path, favorable_label="yes")


def test_threshold_applies_to_the_favorable_probability(tmp_path: Path) -> None:
    frame = _frame()
    est = _pipeline().fit(frame, (frame.x1 > 0).astype(int))  # type: ignore[attr-defined]
    path = tmp_path / "m.skops"
    sio.dump(est, path)
    model = load_model(kind="sklearn", path=path, threshold=0.8)
    np.testing.assert_array_equal(model.predict(frame), est.predict_proba(frame)[:, 1] >= 0.8)  # type: ignore[union-attr]
    svc = LinearSVC().fit(frame[["x1", "x2"]], frame.x1 > 0)
    sio.dump(svc, tmp_path / "svc.skops")
    assert load_model(kind="sklearn", path=tmp_path / "svc.skops").score(frame) is None  # type: ignore[union-attr]
    with pytest.raises(ModelLoadError, match=r"model\.threshold"):
        load_model(kind="sklearn", path=tmp_path / "svc.skops", threshold=0.7)


def test_untrusted_types_refused_with_their_names(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 2))
    y = x[:, 0] > 0
    est = make_pipeline(FunctionTransformer(eval), LogisticRegression())
    est.steps[1][1].fit(x, y)
    path = tmp_path / "evil.skops"
    sio.dump(est, path)
    with pytest.raises(UnsafeModelError, match=r"model\.path: .*builtins\.eval"):
        load_model(kind="sklearn", path=path, features=["a", "b"])
    np_load = make_pipeline(FunctionTransformer(np.load), LogisticRegression())
    np_load.steps[1][1].fit(x, y)
    sio.dump(np_load, tmp_path / "npload.skops")
    with pytest.raises(UnsafeModelError, match=r"numpy\.load"):
        load_model(kind="sklearn", path=tmp_path / "npload.skops", features=["a", "b"])
    # The spec author may vouch for it.
    trusted = load_model(kind="sklearn", path=path, features=["a", "b"], trusted=True)
    assert trusted is not None


def test_allowlisted_tree_types_load(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    frame = _frame()
    est = RandomForestClassifier(n_estimators=3, random_state=0).fit(
        frame[["x1", "x2"]], frame.x1 > 0
    )
    path = tmp_path / "rf.skops"
    sio.dump(est, path)
    assert sio.get_untrusted_types(file=path)  # sklearn.tree._tree.Tree needs the allowlist
    model = load_model(kind="sklearn", path=path, favorable_label=True)
    np.testing.assert_array_equal(model.predict(frame), est.predict(frame[["x1", "x2"]]))  # type: ignore[union-attr]


def test_features_and_missing_columns(tmp_path: Path) -> None:
    frame = _frame()
    est = LogisticRegression().fit(frame[["x1", "x2"]].to_numpy(), frame.x1 > 0)
    path = tmp_path / "arr.skops"
    sio.dump(est, path)
    with pytest.raises(ModelLoadError, match=r"model\.features"):
        load_model(kind="sklearn", path=path, favorable_label=True)
    model = load_model(kind="sklearn", path=path, favorable_label=True, features=["x1", "x2"])
    np.testing.assert_array_equal(model.predict(frame), est.predict(frame[["x1", "x2"]].to_numpy()))  # type: ignore[union-attr]
    with pytest.raises(ModelLoadError, match=r"\['x2'\] not found"):
        model.predict(frame.drop(columns=["x2"]))  # type: ignore[union-attr]


def test_numeric_protected_codes_survive_category_typing(tmp_path: Path) -> None:
    # The engine turns protected columns into string categories; a model trained
    # on 0/1 codes must still see numbers.
    rng = np.random.default_rng(3)
    raw = pd.DataFrame({"x1": rng.normal(size=100), "sex": rng.integers(0, 2, size=100)})
    est = LogisticRegression().fit(raw, (raw.x1 + 2 * raw.sex > 1).astype(int))
    sio.dump(est, tmp_path / "m.skops")
    model = load_model(kind="sklearn", path=tmp_path / "m.skops")
    typed = raw.assign(sex=raw.sex.astype("string").astype("category"))
    np.testing.assert_array_equal(model.predict(typed), est.predict(raw) == 1)  # type: ignore[union-attr]


def test_dispatch_errors(tmp_path: Path) -> None:
    assert load_model(kind="predictions", path=None) is None
    with pytest.raises(ModelLoadError, match=r"model\.kind: 'keras'.*predictions, sklearn"):
        load_model(kind="keras", path=tmp_path)
    with pytest.raises(ModelLoadError, match=r"model\.path: required"):
        load_model(kind="sklearn", path=None)
    with pytest.raises(ModelLoadError, match=r"model\.path: file not found"):
        load_model(kind="sklearn", path=tmp_path / "nope.skops")
    txt = tmp_path / "model.txt"
    txt.write_text("hello")
    with pytest.raises(ModelLoadError, match=r"not a scikit-learn model file.*\.skops"):
        load_model(kind="sklearn", path=txt)
    bad = tmp_path / "bad.skops"
    bad.write_text("not a zip")
    with pytest.raises(ModelLoadError, match=r"not a valid \.skops file"):
        load_model(kind="sklearn", path=bad)
    assert issubclass(ModelLoadError, ProbeError)


def test_no_heavy_imports_at_import_time() -> None:
    import subprocess
    import sys

    code = (
        "import sys, probes.models, probes.models.sklearn, probes.counterfactual_tabular;"
        "print(any(m.split('.')[0] in ('torch', 'transformers') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
