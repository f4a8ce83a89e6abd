"""lda-search acceptance: German credit with a planted proxy, without one, seeds, permutation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from audit import run_audit
from audit.reports.html import render_html
from probes.lda.candidates import plan
from probes.lda.probe import LdaSearchConfig, _with_thresholds
from probes.lda.search import run_search
from probes.models.sklearn import load_sklearn
from tests.probes.lda_data import german_case

pytestmark = pytest.mark.slow  # each search fits ~50 candidates


def _lda(results: dict[str, Any]) -> dict[str, Any]:
    (entry,) = [p for p in results["probes"] if p["kind"] == "lda-search"]
    return entry


def _finding(results: dict[str, Any]) -> dict[str, Any]:
    (f,) = [f for f in results["findings"] if f["metric"] == "lda_available"]
    return f


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("lda-proxy")
    german_case(root, planted=True)
    out = root / "out"
    results = run_audit(root / "spec.yaml", out, store=False)
    return out, results


def test_planted_proxy_finds_an_alternative_and_names_the_proxy(
    planted: tuple[Path, dict[str, Any]],
) -> None:
    out, results = planted
    entry = _lda(results)
    base, best = entry["baseline"], entry["best"]
    assert base["min_impact_ratio"] < 0.8  # the planted disparity
    assert best is not None
    assert best["min_impact_ratio"] > 0.8
    assert base["performance"] - best["performance"] < 0.01  # AUC loss
    assert best["performance_loss"] == pytest.approx(base["performance"] - best["performance"])
    assert entry["drivers"][0]["feature"] == "proxy"
    assert entry["summary"]["lda_found"] is True
    finding = _finding(results)
    assert finding["status"] == "fail"
    assert finding["value"] == pytest.approx(best["min_impact_ratio"])
    assert results["verdict"] == "fail"
    names = {a["name"] for a in entry["alternatives"]}
    assert {"refit", "drop:proxy"} <= names
    assert any(n.startswith("exponentiated_gradient:") for n in names)
    assert any(n.startswith("grid_search:") for n in names)
    assert any(n.startswith("threshold=") for n in names)
    assert set(entry["frontier"]) <= names | {"model in use"}


def test_best_alternative_is_saved_and_loads_as_a_model(
    planted: tuple[Path, dict[str, Any]],
) -> None:
    out, results = planted
    entry = _lda(results)
    path = out / entry["summary"]["best_model_file"]
    model = load_sklearn(path=path)  # the safe loader: skops allowlist
    hold = pd.read_csv(out.parent / "holdout.csv")
    score = model.score(hold)
    assert score is not None and np.all((score >= 0) & (score <= 1))
    html = (out / "report.html").read_text()
    assert "Features that drive the disparity" in html and "<svg" in html
    assert json.loads((out / "results.json").read_text())["verdict"] == "fail"


def test_no_proxy_no_disparity_needs_no_alternative(tmp_path: Path) -> None:
    german_case(tmp_path, planted=False)
    spec = str(tmp_path / "spec.yaml")
    results = run_audit(spec, store=False)
    entry = _lda(results)
    assert entry["baseline"]["min_impact_ratio"] >= 0.8
    assert entry["summary"]["lda_needed"] is False
    assert entry["summary"]["lda_found"] is False
    assert _finding(results)["status"] == "pass"
    html = render_html(results)
    assert "No alternative is needed" in html and "<svg" in html


def test_one_seed_gives_identical_results(tmp_path: Path) -> None:
    spec = german_case(tmp_path, planted=True)
    spec["probes"][0].update(bounds=[0.05], grid_size=3, seeds=1, bootstrap=100)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    first = _lda(run_audit(str(tmp_path / "spec.yaml"), store=False))
    second = _lda(run_audit(str(tmp_path / "spec.yaml"), store=False))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_no_candidate_reads_the_protected_column(tmp_path: Path) -> None:
    # the model in use takes sex as an input: every candidate must neutralize it
    german_case(tmp_path, planted=True, extra_features=("sex",))
    model = load_sklearn(path=tmp_path / "model.skops")
    train = pd.read_csv(tmp_path / "train.csv")
    hold = pd.read_csv(tmp_path / "holdout.csv")
    features = model.features
    assert "sex" in features
    cfg = LdaSearchConfig(attribute="sex", train="train.csv", bounds=[0.05], grid_size=3, seeds=1)
    specs = plan(
        model.estimator,
        features=features,
        excluded=("sex",),
        seeds=cfg.seeds,
        hyperparameters=True,
        drop_features=True,
        reductions=True,
        bounds=(0.05,),
        grid_size=3,
    )
    y = (train["credit_risk"] == 1).astype(int).to_numpy()
    outcome = run_search(
        specs,
        model.estimator,
        x=train[list(features)],
        y=y,
        sensitive=train["sex"].astype(str).to_numpy(),
        excluded=("sex",),
        seed=0,
        n_jobs=2,
        budget_s=600,
    )
    found = _with_thresholds(cfg, list(outcome.candidates))
    assert len(found) > 30 and not outcome.failed
    permuted = hold.copy()
    permuted["sex"] = np.random.default_rng(1).permutation(hold["sex"].to_numpy())
    flipped = hold.assign(sex=np.where(hold["sex"] == "female", "male", "female"))
    for c in found:
        sel, score = c.decide(hold[list(features)])
        for other in (permuted, flipped):
            sel2, score2 = c.decide(other[list(features)])
            assert np.array_equal(sel, sel2), c.name
            assert np.array_equal(score, score2), c.name
