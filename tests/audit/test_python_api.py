"""The Python API: DataFrames and fitted models in memory, AuditResult views, one-liner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, selection_rate
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from audit import AuditResult, audit_predictions, run_audit
from audit.errors import AuditInputError
from tests.factories import spec_for, write_pool
from tests.probes.conftest import build_bert


@pytest.fixture(scope="module")
def tiny_text_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT classifier folder (random weights), as in tests/probes."""
    return build_bert(tmp_path_factory.mktemp("clf"), "text-classification", num_labels=2)


def _applicants(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=n)
    years = rng.integers(0, 20, size=n)
    skill = rng.normal(size=n)
    # the recorded outcome favours men: a model trained on it learns sex
    hired = (skill + 0.15 * years + np.where(sex == "male", 1.0, 0.0) + rng.normal(size=n)) > 2
    return pd.DataFrame({"sex": sex, "years": years, "skill": skill, "hired": hired.astype(int)})


def _pipeline(frame: pd.DataFrame, features: list[str]) -> Pipeline:
    cat = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    num = [c for c in features if c not in cat]
    pre = ColumnTransformer([("cat", OneHotEncoder(), cat), ("num", StandardScaler(), num)])
    return Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(
        frame[features], frame["hired"]
    )


SPEC = {
    "name": "notebook-hiring",
    "domain": "hiring",
    "dataset": {"label": "hired", "protected": ["sex"]},
    "probes": [{"kind": "demographic"}],
}


def test_dataframe_and_fitted_pipeline_match_fairlearn(tmp_path: Path) -> None:
    frame = _applicants()
    model = _pipeline(frame, ["sex", "years", "skill"])
    res = run_audit(SPEC, data=frame, model=model, store=False)
    assert isinstance(res, AuditResult)
    assert res["model"]["kind"] == "sklearn" and len(res["model"]["sha256"]) == 64
    assert res["dataset"]["rows"] == len(frame)
    mf = MetricFrame(
        metrics=selection_rate,
        y_true=frame["hired"],
        y_pred=model.predict(frame),
        sensitive_features=frame["sex"],
    )
    groups = res.groups("sex")
    for sex in ("female", "male"):
        assert groups.loc[sex, "selection_rate"] == pytest.approx(mf.by_group[sex])
    assert res.verdict == res["verdict"] == "fail"  # men are hired far more often
    findings = res.findings
    assert list(findings.columns[:7]) == [
        "probe", "attribute", "group", "metric", "value", "threshold", "status"
    ]  # fmt: skip
    assert findings.iloc[0]["status"] == "fail"  # failed first
    assert res.to_dict() == json.loads(json.dumps(res))
    paths = res.save(tmp_path / "out")
    assert json.loads(paths["results"].read_text()) == res.to_dict()
    assert res.report().startswith("<!DOCTYPE html>") or "<html" in res.report()[:200]
    shown = res._repr_html_()
    assert "FAIL" in shown and "<svg" in shown and "impact_ratio" in shown


def test_same_numbers_as_the_file_path(tmp_path: Path) -> None:
    csv = write_pool(tmp_path / "pool.csv", n=1500, seed=4)
    spec = spec_for(csv)
    from_file = run_audit(spec, store=False)
    in_memory = run_audit(
        {**spec, "dataset": {k: v for k, v in spec["dataset"].items() if k != "path"}},
        data=pd.read_csv(csv),
        store=False,
    )
    assert in_memory["probes"] == from_file["probes"]
    assert in_memory["findings"] == from_file["findings"]


def test_compare_two_model_versions() -> None:
    frame = _applicants()
    v1 = run_audit(SPEC, data=frame, model=_pipeline(frame, ["sex", "years", "skill"]), store=False)
    v2 = run_audit(SPEC, data=frame, model=_pipeline(frame, ["years", "skill"]), store=False)
    diff = v1.compare(v2)
    row = diff[(diff.metric == "impact_ratio") & (diff.group == "female")].iloc[0]
    assert row["value_other"] > row["value_self"]  # dropping sex narrows the gap
    assert row["delta"] == pytest.approx(row["value_other"] - row["value_self"])
    assert bool(row["changed"])
    same = v1.compare(v1)
    assert not same["changed"].any()


def test_audit_predictions_one_liner_matches_fairlearn() -> None:
    rng = np.random.default_rng(1)
    sex = rng.choice(["f", "m"], size=800)
    race = rng.choice(["a", "b", "c"], size=800)
    y_true = rng.integers(0, 2, size=800)
    y_pred = (rng.random(800) < np.where(sex == "f", 0.3, 0.5)).astype(int)
    res = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive_features={"sex": sex, "race": race}
    )
    mf = MetricFrame(metrics=selection_rate, y_true=y_true, y_pred=y_pred, sensitive_features=race)
    for g in ("a", "b", "c"):
        assert res.groups("race").loc[g, "selection_rate"] == pytest.approx(mf.by_group[g])
    assert set(res.attributes) >= {"sex", "race"}
    with pytest.raises(KeyError, match="attributes: "):
        res.groups("age")


def test_bad_objects_are_named() -> None:
    frame = _applicants(200)
    with pytest.raises(AuditInputError, match="data: expected a pandas DataFrame, got list"):
        run_audit(SPEC, data=[1, 2, 3], model=None, store=False)
    with pytest.raises(AuditInputError, match="model: expected a fitted scikit-learn"):
        run_audit(SPEC, data=frame, model=object(), store=False)
    with pytest.raises(AuditInputError, match="y_true: has 3 values, y_pred has 4"):
        audit_predictions(y_true=[1, 0, 1], y_pred=[1, 0, 1, 1], sensitive_features=list("abab"))


def test_huggingface_model_and_tokenizer_in_memory(tiny_text_classifier: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_text_classifier)
    tokenizer = AutoTokenizer.from_pretrained(tiny_text_classifier)
    spec = {
        "name": "screener",
        "model": {"positive_label": 1},
        "probes": [{"kind": "counterfactual-text", "templates": "hiring", "max_texts": 20}],
    }
    res = run_audit(spec, model=(model, tokenizer), store=False)
    assert res["model"]["kind"] == "huggingface"
    entry = res["probes"][0]
    assert entry["kind"] == "counterfactual-text" and entry["groups"]
    assert all(g["n"] > 0 for g in entry["groups"])
