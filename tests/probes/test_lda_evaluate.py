"""lda-search evaluation and decision: oracles (scikit-learn, fairlearn) and the policy rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate
from sklearn.metrics import accuracy_score, roc_auc_score

from audit.engine.policy import findings_for
from audit.engine.run import compute_results
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError
from probes.base import ProbeEntry
from probes.lda.evaluate import evaluate, make_holdout, paired_gain_ci
from probes.lda.frontier import choose_best, drivers, pareto


def _data(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    y = rng.random(n) < 0.6
    score = np.round(np.clip(0.3 * y + rng.normal(0.4, 0.2, n), 0, 1), 2)  # ties on purpose
    sel = score >= 0.5
    return g, y, score, sel


@pytest.mark.parametrize("metric", ["auc", "accuracy"])
def test_point_estimates_match_sklearn_and_fairlearn(metric: str) -> None:
    g, y, score, sel = _data()
    h = make_holdout(y=y, groups=g, n_boot=200, seed=1, confidence=0.95, min_group_size=30)
    ev = evaluate(h, score=score, selected=sel, metric=metric)  # type: ignore[arg-type]
    oracle = roc_auc_score(y, score) if metric == "auc" else accuracy_score(y, sel)
    assert ev.record["performance"] == pytest.approx(oracle, abs=1e-12)
    frame = MetricFrame(metrics=selection_rate, y_true=y, y_pred=sel, sensitive_features=g)
    for lv, rate in frame.by_group.items():
        assert ev.record["groups"][lv]["selection_rate"] == pytest.approx(rate, abs=1e-12)
    dpr = demographic_parity_ratio(y, sel, sensitive_features=g)
    assert ev.record["min_impact_ratio"] == pytest.approx(dpr, abs=1e-12)
    lo, hi = ev.record["min_impact_ratio_ci"]
    assert lo < dpr < hi
    lo, hi = ev.record["performance_ci"]
    assert lo < oracle < hi


def test_small_groups_and_unknown_are_not_compared() -> None:
    g, y, score, sel = _data()
    g = g.astype(object)
    g[:10] = "unknown"
    g[10:15] = "tiny"
    h = make_holdout(y=y, groups=g, n_boot=50, seed=1, confidence=0.95, min_group_size=30)
    ev = evaluate(h, score=score, selected=sel, metric="auc")
    assert ev.record["groups"]["tiny"]["compared"] is False
    assert ev.record["groups"]["unknown"]["compared"] is False
    keep = ~np.isin(g, ["unknown", "tiny"])
    dpr = demographic_parity_ratio(y[keep], sel[keep], sensitive_features=g[keep])
    assert ev.record["min_impact_ratio"] == pytest.approx(dpr, abs=1e-12)


def test_control_group_and_weights_hooks() -> None:
    g, y, score, sel = _data()
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(g))
    h = make_holdout(
        y=y, groups=g, n_boot=50, seed=1, confidence=0.95, min_group_size=30, weights=w,
        reference="c",
    )  # fmt: skip
    ev = evaluate(h, score=score, selected=sel, metric="auc")
    rates = {lv: np.average(sel[g == lv], weights=w[g == lv]) for lv in "abc"}
    assert ev.record["min_impact_ratio"] == pytest.approx(
        min(r / rates["c"] for r in rates.values()), abs=1e-12
    )
    assert ev.record["performance"] == pytest.approx(roc_auc_score(y, score, sample_weight=w))


def test_paired_gain_ci_and_one_seed() -> None:
    g, y, score, sel = _data()
    h = make_holdout(y=y, groups=g, n_boot=200, seed=1, confidence=0.95, min_group_size=30)
    a = evaluate(h, score=score, selected=sel, metric="auc")
    fairer = sel | ((g == "c") & (score >= 0.3))  # selects more of one group
    b = evaluate(h, score=score, selected=fairer, metric="auc")
    assert paired_gain_ci(a, a, 0.95) == [0.0, 0.0]
    h2 = make_holdout(y=y, groups=g, n_boot=200, seed=1, confidence=0.95, min_group_size=30)
    assert evaluate(h2, score=score, selected=sel, metric="auc").record == a.record
    assert b.record["min_impact_ratio"] != a.record["min_impact_ratio"]


def _rec(name: str, perf: float, ir: float, loss: float, **kw: object) -> dict:
    return {"name": name, "performance": perf, "min_impact_ratio": ir, "performance_loss": loss}


def test_frontier_best_and_drivers() -> None:
    base = {"name": "model in use", "performance": 0.80, "min_impact_ratio": 0.6}
    recs = [
        _rec("a", 0.80, 0.7, 0.0),
        _rec("b", 0.795, 0.85, 0.005),
        _rec("c", 0.75, 0.95, 0.05),  # fairest, but over the loss budget
        _rec("d", 0.79, 0.80, 0.01),
    ]
    recs.append({**_rec("drop:x", 0.79, 0.9, 0.01), "family": "drop", "dropped": ["x"]})
    recs.append({**_rec("drop:y", 0.80, 0.62, 0.0), "family": "drop", "dropped": ["y"]})
    assert choose_best(base, recs, max_loss=0.01)["name"] == "drop:x"  # type: ignore[index]
    assert choose_best(base, recs[:4], max_loss=0.01)["name"] == "b"  # type: ignore[index]
    assert choose_best(base, [_rec("e", 0.8, 0.5, 0.0)], max_loss=0.01) is None
    assert set(pareto([base, *recs])) == {"a", "b", "c", "drop:x"}  # d, drop:y dominated
    assert [d["feature"] for d in drivers(base, recs)] == ["x", "y"]


@pytest.mark.parametrize(
    ("value", "baseline", "flag", "status"),
    [
        (0.85, 0.6, False, "fail"),  # lifted above the threshold
        (0.7, 0.6, True, "fail"),  # a gain beyond its CI
        (0.7, 0.6, False, "pass"),  # a small, uncertain gain
        (0.95, 0.85, True, "pass"),  # the model in use already passes: none needed
    ],
)
def test_lda_available_rule(value: float, baseline: float, flag: bool, status: str) -> None:
    row = {
        "group": "best",
        "n": 400,
        "lda_min_impact_ratio": value,
        "baseline_min_impact_ratio": baseline,
        "lda_significant": flag,
    }
    entry = ProbeEntry(kind="lda-search", attribute="sex", groups=[row])
    spec, _ = parse_spec({"name": "x", "dataset": {"path": "d.csv", "protected": ["sex"]}})
    (finding,) = findings_for([entry], spec, min_group_size=30)
    assert finding.metric == "lda_available" and finding.status == status
    assert finding.value == value and finding.threshold == 0.8


def test_bad_train_file_is_an_input_error_naming_the_field(
    tmp_path: Path, clean_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from audit.cli import main
    from tests.probes.lda_data import german_case

    spec = german_case(tmp_path, planted=False)
    spec["probes"][0]["train"] = "missing.csv"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    # the command in this process (as tests/audit/test_bad_inputs.py runs it): a child
    # process would spend seconds importing what this one has loaded already
    clean_settings.setenv("BIASAUDIT_ARTIFACT_DIR", str(tmp_path / "art"))
    code = main(["run", str(tmp_path / "spec.yaml")])
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert "probes[].train: file not found: missing.csv" in stderr
    (tmp_path / "bad.csv").write_text("duration\n1\n")
    spec["probes"][0]["train"] = "bad.csv"
    with pytest.raises(AuditInputError, match=r"probes\[\]\.train: bad.csv lacks column"):
        compute_results(spec, base_dir=tmp_path)


def test_the_engine_inputs_reach_the_holdout() -> None:
    """dataset.weight and dataset.reference, as the engine passes them in ProbeInput, are
    what the search evaluates with (weighted rates, ratios against the control group)."""
    import pandas as pd

    from probes.base import ProbeInput
    from probes.lda.probe import LdaSearchConfig, _holdout
    from probes.lda.rows import Rows

    g, y, score, sel = _data()
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(g))
    data = ProbeInput(
        frame=pd.DataFrame({"grp": pd.Categorical(g)}),
        protected=("grp",),
        y_true=y,
        weight=w,
        reference={"grp": "c"},
    )
    config = LdaSearchConfig(attribute="grp", train="train.csv")
    rows = Rows(
        train=pd.DataFrame(),
        y_train=np.zeros(0, dtype=int),
        sensitive_train=np.zeros(0, dtype=object),
        holdout=np.arange(len(g)),
        levels=None,
        membership=None,
        groups=pd.Series(g).astype(str),
    )
    holdout = _holdout(config, data, rows, seed=1)
    ev = evaluate(holdout, score=score, selected=sel, metric="auc")
    rates = {lv: np.average(sel[g == lv], weights=w[g == lv]) for lv in "abc"}
    assert ev.record["min_impact_ratio"] == pytest.approx(
        min(r / rates["c"] for r in rates.values()), abs=1e-12
    )
    assert ev.record["performance"] == pytest.approx(roc_auc_score(y, score, sample_weight=w))


def test_soft_groups_are_probability_weighted() -> None:
    """Membership probabilities (a race proxy's posteriors): one-hot rows give the hard
    groups' figures exactly; soft rows give sum(w p sel) / sum(w p) per group."""
    g, y, score, sel = _data()
    levels = ("a", "b", "c")
    onehot = (g[:, None] == np.array(levels)[None, :]).astype(float)
    hard = make_holdout(y=y, groups=g, n_boot=50, seed=1, confidence=0.95, min_group_size=30)
    soft = make_holdout(
        y=y, membership=(levels, onehot), n_boot=50, seed=1, confidence=0.95, min_group_size=30
    )
    a = evaluate(hard, score=score, selected=sel, metric="auc").record
    b = evaluate(soft, score=score, selected=sel, metric="auc").record
    assert a == b
    rng = np.random.default_rng(5)
    p = rng.dirichlet([1.0, 1.0, 1.0], size=len(g))
    w = rng.uniform(0.5, 2.0, len(g))
    h = make_holdout(
        y=y,
        membership=(levels, p),
        weights=w,
        n_boot=50,
        seed=1,
        confidence=0.95,
        min_group_size=30,
        reference="a",
    )
    rec = evaluate(h, score=score, selected=sel, metric="auc").record
    rates = {lv: float((w * p[:, i]) @ sel / (w @ p[:, i])) for i, lv in enumerate(levels)}
    for lv, rate in rates.items():
        assert rec["groups"][lv]["selection_rate"] == pytest.approx(rate, abs=1e-12)
    assert rec["min_impact_ratio"] == pytest.approx(
        min(r / rates["a"] for r in rates.values()), abs=1e-12
    )
