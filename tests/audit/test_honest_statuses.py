"""Statuses say what was tested: not_applicable flips, non-significant breaches, own p-values."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from audit import audit_predictions, run_audit
from probes.stats import mcnemar_exact


def _frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], size=n)
    band = rng.choice(["low", "mid", "high"], size=n)
    score = rng.normal(size=n) + np.where(sex == "male", 1.2, 0.0) + (band == "high")
    return pd.DataFrame({"sex": sex, "band": band, "ok": (score > 0.8).astype(int)})


def _model(frame: pd.DataFrame, features: list[str]) -> Pipeline:
    return Pipeline([("enc", OneHotEncoder()), ("clf", LogisticRegression())]).fit(
        frame[features], frame["ok"]
    )


SPEC = {
    "name": "flip",
    "dataset": {"protected": ["sex"]},
    "probes": [{"kind": "counterfactual-tabular", "attribute": "sex"}],
}


def test_flip_test_on_an_attribute_the_model_does_not_take_is_not_applicable() -> None:
    frame = _frame()
    # stored too: the embedded database takes the new status (a private SQLite per test)
    res = run_audit(SPEC, data=frame, model=_model(frame, ["band"]), store=True)
    findings = res["findings"]
    assert findings and {f["status"] for f in findings} == {"not_applicable"}
    assert all("does not take 'sex'" in f["note"] for f in findings)
    assert res["probes"][0]["summary"]["attribute_in_features"] is False
    assert res.verdict == "pass"
    report = res.report()
    assert "not applicable (the model does not take" in report


def test_each_counterfactual_row_carries_its_own_p_value() -> None:
    frame = _frame()
    res = run_audit(SPEC, data=frame, model=_model(frame, ["sex", "band"]), store=False)
    entry = res["probes"][0]
    ref = entry["reference_group"]
    (group,) = [g for g in entry["groups"] if g["group"] != ref]
    by_metric = {f["metric"]: f for f in res["findings"]}
    assert by_metric["flip_rate"]["p_value"] == group["flip_p_value"]
    assert by_metric["score_gap"]["p_value"] == group["score_p_value"]
    assert by_metric["flip_rate"]["p_value"] != by_metric["score_gap"]["p_value"]
    # McNemar on the flips, recomputed from the counts the entry reports
    expected = mcnemar_exact(group["flips_to_selected"], group["flips_to_not_selected"])
    assert by_metric["flip_rate"]["p_value"] == expected
    assert {f["status"] for f in res["findings"]} == {"fail"}  # the model uses sex


def test_a_breach_that_is_not_significant_says_so() -> None:
    rng = np.random.default_rng(3)
    sex = np.repeat(["f", "m"], 300)
    # selection rates 0.45 vs 0.50: impact ratio 0.9, far from significant at n=300
    y_pred = np.concatenate([rng.permutation([1] * 135 + [0] * 165), [1] * 150 + [0] * 150])
    kwargs = {"y_pred": y_pred, "sensitive_features": {"sex": sex}}
    strict = audit_predictions(**kwargs, policy={"min_impact_ratio": 0.95})
    (row,) = [f for f in strict["findings"] if f["group"] == "f" and f["metric"] == "impact_ratio"]
    assert row["status"] == "fail"
    assert row["p_value"] > 0.05
    assert row["note"] == "below threshold, not significant at alpha 0.05"
    assert "FAIL (below threshold, not significant at alpha 0.05)" in strict.report()
    lenient = audit_predictions(
        **kwargs, policy={"min_impact_ratio": 0.95, "require_significance": True}
    )
    (row,) = [f for f in lenient["findings"] if f["group"] == "f" and f["metric"] == "impact_ratio"]
    assert row["status"] == "pass"
    assert row["note"] == "below threshold, not significant at alpha 0.05"
    clear = audit_predictions(**kwargs)  # within four-fifths: no note
    assert not any(f.get("note") for f in clear["findings"])
