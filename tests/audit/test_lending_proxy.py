"""Synthetic applicants drawn from the census tables: planted disparities, proxy calibration,
and the pricing probe end to end through run_audit."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pytest

from audit.engine.run import run_audit
from audit.examples.lending_proxy import generate_pool, main, surname_weights
from audit.sources.census import fetch, load_tables
from probes.proxy import RACES, ProxyTables, bifsg, bisg


@pytest.fixture(scope="module")
def tables() -> ProxyTables:
    fetch()
    return load_tables(levels=("zcta",))


def _truth(pool: pd.DataFrame) -> np.ndarray:
    return np.eye(len(RACES))[pool.true_race.cat.codes.to_numpy()]


def test_pool_is_seeded_and_plants_what_it_says(tables: ProxyTables) -> None:
    pool = generate_pool(tables, n=30_000, seed=1)
    assert pool.equals(generate_pool(tables, n=30_000, seed=1))
    assert not pool.equals(generate_pool(tables, n=30_000, seed=2))
    assert list(pool.true_race.cat.categories) == list(RACES)
    share = pool.true_race.value_counts(normalize=True).reindex(list(RACES)).to_numpy()
    np.testing.assert_allclose(share, tables.prior, atol=0.01)  # the census race mix
    rate = pool.groupby("true_race", observed=True).approved.mean()
    assert rate["black"] / rate["white"] == pytest.approx(0.8, abs=0.05)
    assert rate["hispanic"] / rate["white"] == pytest.approx(0.8, abs=0.05)
    assert rate["white"] == pytest.approx(0.7, abs=0.02)
    assert pool.apr.isna().to_numpy().tolist() == (pool.approved == 0).tolist()
    assert set(pool.zip.str.len()) == {5}
    assert pool.zip.isin(list(tables.geographies["zcta"].index)).all()
    assert pool.last_name.str.istitle().all() and pool.first_name.notna().all()


def test_surname_weights_hit_a_target_race_mix(tables: ProxyTables) -> None:
    s = tables.surname.probs / tables.surname.probs.sum(axis=1, keepdims=True)
    target = np.array([0.6, 0.15, 0.15, 0.07, 0.01, 0.02])
    w = surname_weights(tables, target)
    np.testing.assert_allclose(w @ s, target, atol=1e-9)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    # a mix the surname list cannot give exactly is approached with non-negative weights
    hard = np.array([0.4, 0.3, 0.2, 0.05, 0.03, 0.02])
    w = surname_weights(tables, hard)
    assert (w >= 0).all()
    np.testing.assert_allclose(w @ s, hard, atol=0.005)


def test_bifsg_is_better_calibrated_than_bisg(tables: ProxyTables) -> None:
    """On pools drawn from the census tables BISG's posteriors are calibrated (their mean
    matches each race's share) and BIFSG's first names make them sharper: lower Brier."""
    for seed in (3, 4):
        pool = generate_pool(tables, n=20_000, seed=seed)
        truth = _truth(pool)
        b = bisg(tables, surname=pool.last_name, geography=pool.zip).posteriors.to_numpy()
        f = bifsg(
            tables, surname=pool.last_name, first_name=pool.first_name, geography=pool.zip
        ).posteriors.to_numpy()
        brier_bisg = float(((b - truth) ** 2).sum(axis=1).mean())
        brier_bifsg = float(((f - truth) ** 2).sum(axis=1).mean())
        assert brier_bifsg < brier_bisg - 0.01, (seed, brier_bisg, brier_bifsg)
        for post in (b, f):  # calibration in the large, per race
            np.testing.assert_allclose(post.mean(axis=0), truth.mean(axis=0), atol=0.01)
        # reliability: among rows given 70-90% white, about 80% are white
        band = (f[:, 0] >= 0.7) & (f[:, 0] < 0.9)
        assert truth[band, 0].mean() == pytest.approx(f[band, 0].mean(), abs=0.03)


def _pricing_audit(
    tmp_path: Path, pool: pd.DataFrame, controls: list[str], out: Path | None = None
) -> dict:
    path = tmp_path / "applicants.csv"
    pool.rename(columns={"true_race": "race"}).to_csv(path, index=False)
    spec = {
        "name": "pricing",
        "domain": "lending",
        "dataset": {"path": str(path), "protected": ["race"], "prediction": "approved"},
        "probes": [
            {
                "kind": "outcome-disparity",
                "outcome": "apr",
                "reference": "white",
                "adverse": "higher",
                "controls": controls,
            }
        ],
        "policy": {"max_abs_smd": 1.0, "min_group_size": 30},
    }
    return run_audit(spec, out, store=False)


def _apr(results: dict, group: str) -> dict:
    (entry,) = results["probes"]
    return next(g for g in entry["groups"] if g["group"] == group)


def _finding(results: dict, group: str) -> dict:
    return next(
        f
        for f in results["findings"]
        if f["group"] == group and f["metric"] == "adjusted_difference"
    )


@pytest.mark.parametrize("via", ["direct", "credit_score"])
def test_pricing_probe_finds_a_planted_25bp_gap_that_controls_explain_when_built_from_them(
    tmp_path: Path, tables: ProxyTables, via: Literal["direct", "credit_score"]
) -> None:
    pool = generate_pool(tables, n=12_000, seed=7, apr_gap=0.25, apr_gap_via=via)
    raw = _pricing_audit(tmp_path, pool, controls=[])
    adjusted = _pricing_audit(tmp_path, pool, controls=["credit_score"], out=tmp_path / "out")
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Outcome disparity (continuous outcome)" in report and "Adjusted difference" in report
    for group in ("black", "hispanic"):
        seen = _apr(raw, group)
        assert seen["difference"] == pytest.approx(0.25, abs=0.06)
        assert seen["p_value"] < 0.01 and seen["adjusted_difference_p_value_holm"] < 0.01
        assert _finding(raw, group)["status"] == "fail"  # no controls: the gap is a finding
        got = _apr(adjusted, group)
        if via == "direct":  # the gap is not explained by credit score
            assert got["adjusted_difference"] == pytest.approx(0.25, abs=0.05)
            assert got["adjusted_difference_p_value_holm"] < 0.01
            assert _finding(adjusted, group)["status"] == "fail"
        else:  # built from credit score: controlling for it removes the gap
            assert abs(got["adjusted_difference"]) < 0.05
            lo, hi = got["adjusted_difference_ci"]
            assert lo < 0 < hi
            assert got["adjusted_difference_p_value_holm"] > 0.05
            assert _finding(adjusted, group)["status"] == "pass"
    assert adjusted["verdict"] == ("fail" if via == "direct" else "pass")


def test_example_writes_applicants_without_race(tmp_path: Path, tables: ProxyTables) -> None:
    assert main(["--out", str(tmp_path / "pool"), "--n", "500", "--seed", "3"]) == 0
    applicants = pd.read_csv(tmp_path / "pool" / "applicants.csv")
    truth = pd.read_csv(tmp_path / "pool" / "truth.csv")
    assert "true_race" not in applicants.columns and len(applicants) == 500
    assert list(truth.columns) == ["applicant_id", "true_race"]
    assert (applicants.applicant_id == truth.applicant_id).all()
    # ZIPs lose their leading zeros in a CSV read with default types; BISG restores them
    res = bisg(tables, surname=applicants.last_name, geography=applicants.zip)
    assert res.coverage.both_matched == 500
