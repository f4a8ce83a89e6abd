"""Pricing (outcome-disparity) by a race proxy: multiple imputation with Rubin's rules.

Race is drawn 20 times from P(race | names, ZIP, decision, APR) and each completed
data set is fitted by OLS with HC3 errors (statsmodels); the pool's planted 25 bp APR
gap must be found (p < 0.01), and with none planted there must be no alarm over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from audit.engine.run import compute_results
from audit.examples.lending_proxy import generate_pool
from audit.sources.census import fetch, load_tables
from probes.outcome_mi import outcome_mixture_posteriors
from probes.proxy import ProxyTables


@pytest.fixture(scope="module")
def tables() -> ProxyTables:
    fetch()
    return load_tables(levels=("zcta",))


def _audit(tmp_path: Path, pool: pd.DataFrame, controls: list[str] | None = None) -> dict:
    path = tmp_path / "pool.csv"
    pool.drop(columns=["true_race"]).to_csv(path, index=False)
    probe: dict[str, Any] = {"kind": "outcome-disparity", "adverse": "higher"}
    if controls:
        probe["controls"] = controls
    spec = {
        "name": "pricing",
        "domain": "lending",
        "dataset": {
            "path": str(path),
            "prediction": "approved",
            "protected": [],
            "outcome": "apr",
            "reference": {"race_proxy": "white"},
            "proxy": {"method": "bisg", "surname": "last_name", "zcta": "zip"},
        },
        "probes": [probe],
    }
    return compute_results(spec)


def _black(doc: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    entry = next(p for p in doc["probes"] if p["attribute"] == "race_proxy")
    black = next(g for g in entry["groups"] if g["group"] == "black")
    findings = [f for f in doc["findings"] if f["attribute"] == "race_proxy"]
    return black, findings


@pytest.mark.slow
def test_planted_apr_gap_is_found_by_imputation(tmp_path: Path, tables: ProxyTables) -> None:
    pool = generate_pool(tables, n=6000, seed=5, apr_gap=0.25)
    doc = _audit(tmp_path, pool, controls=["credit_score"])
    black, findings = _black(doc)
    entry = next(p for p in doc["probes"] if p["attribute"] == "race_proxy")
    assert entry["summary"]["proxy"]["imputations"] == 20
    # the true-race OLS with HC3, the oracle the imputations estimate
    ok = pool["apr"].notna()
    x = pd.get_dummies(pool.loc[ok, "true_race"], dtype=float).drop(columns="white")
    x["credit_score"] = pool.loc[ok, "credit_score"]
    oracle = sm.OLS(pool.loc[ok, "apr"], sm.add_constant(x)).fit(cov_type="HC3")
    truth = float(oracle.params["black"])
    lo, hi = black["adjusted_difference_ci"]
    assert lo <= truth <= hi
    assert black["adjusted_difference"] == pytest.approx(truth, abs=0.08)
    assert black["adjusted_difference_p_value_holm"] < 0.01 and black["p_value"] < 0.01
    # the regression on posterior membership stays beside, under its own name
    assert black["adjusted_difference_weighted"] is not None
    lo, hi = black["difference_ci"]
    assert lo <= black["difference"] <= hi
    failed = {(f["group"], f["metric"]) for f in findings if f["status"] == "fail"}
    assert ("black", "adjusted_difference") in failed


@pytest.mark.slow
def test_no_planted_gap_no_alarm_over_seeds(tmp_path: Path, tables: ProxyTables) -> None:
    alarms = 0
    for seed in range(10):
        pool = generate_pool(tables, n=4000, seed=300 + seed, apr_gap=0.0)
        _, findings = _black(_audit(tmp_path, pool))
        alarms += any(
            f["metric"] == "adjusted_difference" and f["status"] == "fail" for f in findings
        )
    assert alarms <= 1


def test_the_mixture_fit_recovers_group_means() -> None:
    """EM on y = α_r + x β + ε with known mixing weights gives back α and β."""
    rng = np.random.default_rng(0)
    n = 20_000
    prior = rng.dirichlet([0.6, 0.6, 0.6], size=n)
    race = (rng.random(n)[:, None] > prior.cumsum(axis=1)).sum(axis=1)
    x = rng.normal(size=(n, 1))
    alpha = np.array([6.5, 6.9, 6.6])
    y = alpha[race] + 0.3 * x[:, 0] + rng.normal(0, 0.4, n)
    q = outcome_mixture_posteriors(prior, y, x, np.ones(n))
    fitted = (q * y[:, None]).sum(axis=0) / q.sum(axis=0) - 0.3 * (q * x).sum(axis=0) / q.sum(
        axis=0
    )
    np.testing.assert_allclose(fitted, alpha, atol=0.03)
    # the updated posteriors are sharper than the prior and still calibrated
    assert (q.max(axis=1).mean()) > prior.max(axis=1).mean()
    np.testing.assert_allclose(q.mean(axis=0), np.bincount(race) / n, atol=0.01)
