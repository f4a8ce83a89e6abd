"""dataset.weight, dataset.reference, dataset.bins and favorable-label lists (issue 13).

Weighted metrics are checked against fairlearn's ``MetricFrame(sample_params=...)``
and aif360's ``ClassificationMetric`` with instance weights, on UCI Adult with its
``fnlwgt`` weights, in memory, over chunks and over shards alike.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit.engine import data as data_mod
from audit.engine import sharding
from audit.engine.run import compute_results
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError, SpecError
from audit.settings import get_settings
from audit.sources.public import load_adult

TOL = 1e-9


def count_chunks(parsed: Any, path: Path, shard: Any, **kw: Any) -> dict[str, Any]:
    """One shard's counts, as a worker counts them."""
    kw.setdefault("chunk_rows", 200_000)
    return data_mod.count_chunks(
        parsed.dataset, path, shard=shard, max_levels=parsed.policy.max_levels, **kw
    )


@pytest.fixture(scope="module")
def adult_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    df = load_adult(dropna=True)
    # a deterministic screening rule stands in for a model's decisions
    df["pred"] = ((df["education_num"] >= 13) | (df["hours_per_week"] >= 50)).astype(int)
    path = tmp_path_factory.mktemp("adult") / "adult.csv"
    df[["sex", "race", "age", "income", "pred", "fnlwgt"]].to_csv(path, index=False)
    return path


def _spec(path: Path, **dataset: Any) -> dict[str, Any]:
    return {
        "name": "weighted",
        "domain": "lending",
        "dataset": {
            "path": str(path),
            "label": "income",
            "prediction": "pred",
            "protected": ["sex", "race"],
            "weight": "fnlwgt",
            **dataset,
        },
        "probes": [{"kind": "demographic"}],
    }


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BIASAUDIT_CHUNK_BYTES", "1000")
    monkeypatch.setenv("BIASAUDIT_CHUNK_ROWS", "5000")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _sharded(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    parsed, _ = parse_spec(spec)
    shards = sharding.plan_for(parsed, path, rows=None, shard_rows=7000, max_shards=64)
    parts = [count_chunks(parsed, path, s, chunk_rows=3000) for s in shards]
    parts = json.loads(json.dumps(parts))
    return sharding.results_from_parts(spec, parts, audit_id="x", path=path)


def _groups(doc: dict[str, Any], attribute: str) -> dict[str, dict[str, Any]]:
    entry = next(p for p in doc["probes"] if p["attribute"] == attribute)
    return {g["group"]: g for g in entry["groups"]}


def _check_fairlearn(doc: dict[str, Any], path: Path) -> None:
    from fairlearn.metrics import (
        MetricFrame,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    df = pd.read_csv(path)
    w = df["fnlwgt"].to_numpy(dtype=float)
    for attr in ("sex", "race"):
        metrics = {
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "accuracy": accuracy_score,
        }
        mf = MetricFrame(
            metrics=metrics,
            y_true=df["income"],
            y_pred=df["pred"],
            sensitive_features=df[attr],
            sample_params={m: {"sample_weight": w} for m in metrics},
        )
        ours = _groups(doc, attr)
        assert set(ours) == {str(g) for g in mf.by_group.index}
        for group, row in mf.by_group.iterrows():
            g = ours[str(group)]
            for m in metrics:
                assert g[m] == pytest.approx(row[m], abs=TOL), (attr, group, m)
            mask = (df[attr] == group).to_numpy()
            assert g["n"] == pytest.approx(w[mask].sum(), rel=1e-12)
            kish = w[mask].sum() ** 2 / (w[mask] ** 2).sum()
            assert g["n_effective"] == pytest.approx(kish, rel=1e-9)
            assert g["n_effective"] < mask.sum()  # unequal weights lose information


def test_weighted_metrics_equal_fairlearn_in_memory(adult_csv: Path) -> None:
    doc = compute_results(_spec(adult_csv))
    assert doc["dataset"].get("chunked") is not True
    _check_fairlearn(doc, adult_csv)


def test_weighted_metrics_equal_fairlearn_chunked(adult_csv: Path, chunked: None) -> None:
    doc = compute_results(_spec(adult_csv))
    assert doc["dataset"]["chunked"] is True
    _check_fairlearn(doc, adult_csv)


def test_weighted_metrics_equal_fairlearn_sharded(adult_csv: Path) -> None:
    _check_fairlearn(_sharded(_spec(adult_csv), adult_csv), adult_csv)


SCORE_KEYS = ("mean_score", "auc", "calibration_error", "scoring_rate", "scoring_impact_ratio")


def test_weights_of_one_give_the_unweighted_score_metrics(adult_csv: Path, tmp_path: Path) -> None:
    """LL144's median score is one definition, weighted or not: the interpolated median
    (np.median's midpoint of the two middle scores on an even count), so a weight column
    of ones gives exactly the unweighted median, scoring rates and impact ratios."""
    df = pd.read_csv(adult_csv)
    df = df.iloc[: len(df) - len(df) % 2]  # an even count: the two middle scores differ
    df["score"] = df["fnlwgt"] / df["fnlwgt"].max()  # near-continuous, on real data
    df["one"] = 1
    middle = np.sort(df["score"].to_numpy())[len(df) // 2 - 1 : len(df) // 2 + 1]
    assert middle[0] < middle[1]  # the lower and the midpoint median differ here
    path = tmp_path / "adult_scored.csv"
    df.to_csv(path, index=False)
    plain = compute_results(_spec(path, weight=None, score="score"))
    ones = compute_results(_spec(path, weight="one", score="score"))
    for a, b in zip(plain["probes"], ones["probes"]):
        assert a["summary"]["median_score"] == b["summary"]["median_score"] == middle.mean()
        for ga, gb in zip(a["groups"], b["groups"]):
            assert ga["group"] == gb["group"]
            for k in SCORE_KEYS:
                assert ga[k] == pytest.approx(gb[k], abs=1e-12), (a["attribute"], ga["group"], k)
            assert ga["scoring_rate"] == gb["scoring_rate"]


def test_weighted_privileged_metrics_equal_aif360_instance_weights(adult_csv: Path) -> None:
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    doc = compute_results(_spec(adult_csv, privileged={"sex": "Male"}))
    entry = next(p for p in doc["probes"] if p["attribute"] == "sex")
    priv = entry["summary"]["privileged"]
    df = pd.read_csv(adult_csv)
    frame = pd.DataFrame(
        {"sex": (df["sex"] == "Male").astype(float), "y": df["income"].astype(float)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = BinaryLabelDataset(df=frame, label_names=["y"], protected_attribute_names=["sex"])
        truth.instance_weights = df["fnlwgt"].to_numpy(dtype=float)
        pred = truth.copy()
        pred.labels = df["pred"].to_numpy(dtype=float).reshape(-1, 1)
        m = ClassificationMetric(
            truth, pred, unprivileged_groups=[{"sex": 0.0}], privileged_groups=[{"sex": 1.0}]
        )
        expected = {
            "disparate_impact": m.disparate_impact(),
            "statistical_parity_difference": m.statistical_parity_difference(),
            "equal_opportunity_difference": m.equal_opportunity_difference(),
            "average_odds_difference": m.average_odds_difference(),
            "error_rate_difference": m.error_rate_difference(),
        }
    unweighted = compute_results(_spec(adult_csv, privileged={"sex": "Male"}, weight=None))
    plain = next(p for p in unweighted["probes"] if p["attribute"] == "sex")
    for name, value in expected.items():
        assert priv[name] == pytest.approx(value, abs=TOL), name
    assert plain["summary"]["privileged"]["disparate_impact"] != pytest.approx(
        expected["disparate_impact"], abs=1e-6
    )  # the weights change the answer: the test would see them ignored


def _pool(path: Path, n: int = 800) -> Path:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "race": rng.choice(["White", "Black", "Asian"], size=n, p=[0.5, 0.3, 0.2]),
            "age": rng.integers(18, 80, size=n),
            "decision": rng.choice(["approved", "approved_with_conditions", "denied"], size=n),
            "w": rng.uniform(0.5, 2.0, size=n),
        }
    )
    frame.to_csv(path, index=False)
    return path


def _pool_spec(path: Path, **dataset: Any) -> dict[str, Any]:
    return {
        "name": "pool",
        "domain": "lending",
        "dataset": {
            "path": str(path),
            "prediction": "decision",
            "protected": ["race", "age"],
            "favorable_label": ["approved", "approved_with_conditions"],
            "bins": {"age": [40]},
            **dataset,
        },
        "probes": [{"kind": "demographic"}],
    }


def test_bins_and_favorable_label_list(tmp_path: Path) -> None:
    path = _pool(tmp_path / "p.csv")
    doc = compute_results(_pool_spec(path))
    df = pd.read_csv(path)
    ok = df["decision"].isin(["approved", "approved_with_conditions"])
    ages = _groups(doc, "age")
    assert set(ages) == {"<40", ">=40"}
    young = df["age"] < 40
    assert ages["<40"]["n"] == int(young.sum())
    assert ages["<40"]["selection_rate"] == pytest.approx(ok[young].mean(), abs=TOL)
    assert ages[">=40"]["selection_rate"] == pytest.approx(ok[~young].mean(), abs=TOL)
    spec = _pool_spec(path, bins={"age": [40, 62]})
    assert set(_groups(compute_results(spec), "age")) == {"<40", "[40,62)", ">=62"}


def test_reference_group_is_the_control(tmp_path: Path) -> None:
    path = _pool(tmp_path / "p.csv")
    df = pd.read_csv(path)
    ok = df["decision"].isin(["approved", "approved_with_conditions"])
    for ref in ("White", "Black"):
        doc = compute_results(_pool_spec(path, reference={"race": ref}))
        entry = next(p for p in doc["probes"] if p["attribute"] == "race")
        assert entry["reference_group"] == ref
        groups = _groups(doc, "race")
        assert groups[ref]["p_value"] is None
        for name, g in groups.items():
            expected = ok[df["race"] == name].mean() / ok[df["race"] == ref].mean()
            assert g["impact_ratio"] == pytest.approx(expected, abs=TOL)
    with pytest.raises(AuditInputError, match=r"dataset\.reference\.race: value 'Martian'"):
        compute_results(_pool_spec(path, reference={"race": "Martian"}))
    with pytest.raises(SpecError, match="'zip' is not a protected column"):
        parse_spec(_pool_spec(path, reference={"zip": "1"}))


@pytest.mark.parametrize(
    ("value", "shown"), [("-1.5", "-1.5"), ("", "nan"), ("inf", "inf"), ("heavy", "heavy")]
)
def test_bad_weight_is_refused_by_name(tmp_path: Path, value: str, shown: str) -> None:
    path = _pool(tmp_path / "p.csv")
    df = pd.read_csv(path, dtype={"w": str})
    df.loc[7, "w"] = value
    df.to_csv(path, index=False)
    with pytest.raises(AuditInputError, match=r"dataset\.weight: column 'w' .*row 7") as err:
        compute_results(_pool_spec(path, weight="w"))
    assert err.value.field == "dataset.weight"
    assert shown in str(err.value)


def test_missing_weight_column_and_bad_bins_are_refused(tmp_path: Path) -> None:
    path = _pool(tmp_path / "p.csv")
    with pytest.raises(AuditInputError, match="'weights'"):
        compute_results(_pool_spec(path, weight="weights"))
    with pytest.raises(SpecError, match="strictly increasing"):
        parse_spec(_pool_spec(path, bins={"age": [62, 40]}))
    df = pd.read_csv(path)
    df["age"] = df["age"].astype(str)
    df.loc[3, "age"] = "forty"
    df.to_csv(path, index=False)
    with pytest.raises(AuditInputError, match=r"dataset\.bins\.age: .*'forty' \(row 3\)"):
        compute_results(_pool_spec(path))


def test_outcome_disparity_takes_dataset_outcome_weight_and_reference(tmp_path: Path) -> None:
    path = _pool(tmp_path / "p.csv")
    df = pd.read_csv(path)
    rng = np.random.default_rng(5)
    df["apr"] = 6.5 + rng.normal(0, 0.5, len(df)) + 0.3 * (df["race"] == "Black")
    df.to_csv(path, index=False)
    spec = _pool_spec(path, weight="w", outcome="apr", reference={"race": "Asian"})
    spec["probes"] = [{"kind": "outcome-disparity", "attributes": ["race"]}]
    doc = compute_results(spec)
    entry = doc["probes"][0]
    assert entry["reference_group"] == "Asian"
    assert entry["summary"]["outcome"] == "apr"
    groups = {g["group"]: g for g in entry["groups"]}
    for name, g in groups.items():
        mask = df["race"] == name
        assert g["mean"] == pytest.approx(np.average(df["apr"][mask], weights=df["w"][mask]))
    explicit = _pool_spec(path)
    explicit["probes"] = [
        {
            "kind": "outcome-disparity",
            "attributes": ["race"],
            "outcome": "apr",
            "weight": "w",
            "reference": "Asian",
        }
    ]
    same = compute_results(explicit)["probes"][0]["groups"]
    assert [g.get("difference") for g in same] == [g.get("difference") for g in entry["groups"]]
    assert groups["Black"]["difference"] == pytest.approx(0.3, abs=0.15)
