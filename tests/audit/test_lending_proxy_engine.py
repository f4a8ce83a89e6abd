"""dataset.proxy through the engine: the demographic probe's ``race_proxy`` entry.

Pools are drawn from the census tables with known race (audit.examples.lending_proxy);
the proxy's probability-weighted counts are checked against a direct computation,
and the multiple-imputation intervals against the planted disparity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from audit.engine.run import compute_results
from audit.engine.spec import parse_spec
from audit.errors import AuditInputError, SpecError
from audit.examples.lending_proxy import generate_pool
from audit.sources.census import fetch, load_tables
from probes.proxy import RACES, ProxyTables, bisg


@pytest.fixture(scope="module")
def tables() -> ProxyTables:
    fetch()
    return load_tables(levels=("zcta",))


def _write(tmp_path: Path, pool: pd.DataFrame, name: str = "pool.csv") -> Path:
    path = tmp_path / name
    pool.drop(columns=["true_race"]).to_csv(path, index=False)
    return path


def _spec(path: Path, **dataset: Any) -> dict[str, Any]:
    return {
        "name": "proxy",
        "domain": "lending",
        "dataset": {
            "path": str(path),
            "prediction": "approved",
            "protected": [],
            "proxy": {"method": "bisg", "surname": "last_name", "zcta": "zip"},
            "reference": {"race_proxy": "white"},
            **dataset,
        },
        "probes": [{"kind": "demographic"}],
    }


def _proxy_entry(doc: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in doc["probes"] if p["attribute"] == "race_proxy")


def test_proxy_entry_is_probability_weighted(tmp_path: Path, tables: ProxyTables) -> None:
    pool = generate_pool(tables, n=4000, seed=11)
    pool["w"] = np.random.default_rng(2).uniform(0.5, 1.5, len(pool))
    path = _write(tmp_path, pool)
    doc = compute_results(_spec(path, weight="w"))
    entry = _proxy_entry(doc)
    assert entry["reference_group"] == "white"
    post = bisg(tables, surname=pool.last_name, geography=pool.zip).posteriors[list(RACES)]
    weight = post.to_numpy() * pool["w"].to_numpy()[:, None]
    expected_rate = (weight * pool["approved"].to_numpy()[:, None]).sum(0) / weight.sum(0)
    groups = {g["group"]: g for g in entry["groups"]}
    for i, race in enumerate(RACES):
        assert groups[race]["n"] == pytest.approx(weight[:, i].sum(), rel=1e-9)
        assert groups[race]["selection_rate"] == pytest.approx(expected_rate[i], abs=1e-9)
        if race in ("white", "black", "hispanic"):  # large enough for an impact ratio
            weighted = expected_rate[i] / expected_rate[RACES.index("white")]
            assert groups[race]["impact_ratio_weighted"] == pytest.approx(weighted, abs=1e-9)
        kish = weight[:, i].sum() ** 2 / (weight[:, i] ** 2).sum()
        assert groups[race]["n_effective"] == pytest.approx(kish, rel=1e-9)
    proxy = entry["summary"]["proxy"]
    assert proxy["rows"] == len(pool) and proxy["surname_matched"] > 0.8 * len(pool)
    assert proxy["imputations"] == 20
    assert 0 < proxy["threshold"]["assigned_share"] < 1
    black = groups["black"]
    lo, hi = black["impact_ratio_ci"]
    assert lo < black["impact_ratio_mi"] < hi and black["p_value"] is not None
    assert black["impact_ratio"] == black["impact_ratio_mi"]
    again = _proxy_entry(compute_results(_spec(path, weight="w")))
    assert again["groups"] == entry["groups"]  # seeded imputations


def test_the_judged_value_lies_inside_its_interval(tmp_path: Path, tables: ProxyTables) -> None:
    """A true 0.80 reads about 0.85 probability-weighted: the finding judges Rubin's
    estimate, the value its interval is about, with the weighted one beside it."""
    pool = generate_pool(tables, n=4000, seed=3, approval_ratio=0.8)
    doc = compute_results(_spec(_write(tmp_path, pool)))
    groups = {g["group"]: g for g in _proxy_entry(doc)["groups"]}
    judged = {
        f["group"]: f
        for f in doc["findings"]
        if (f["attribute"], f["metric"]) == ("race_proxy", "impact_ratio")
    }
    assert {"black", "hispanic"} <= set(judged)
    for race, finding in judged.items():
        g = groups[race]
        if race == "white" or finding["status"] == "insufficient_data":
            continue  # the reference (no interval) and groups too small to judge
        lo, hi = g["impact_ratio_ci"]
        assert finding["value"] == pytest.approx(g["impact_ratio"])
        assert lo <= finding["value"] <= hi, race
        assert g["impact_ratio"] == g["impact_ratio_mi"]
    black = groups["black"]
    truth = pool.groupby("true_race", observed=True)["approved"].mean()
    true_ratio = truth["black"] / truth["white"]
    # the weighted ratio is diluted towards parity; the judged one is not
    assert black["impact_ratio_weighted"] > black["impact_ratio"] + 0.02
    judged_error = abs(black["impact_ratio"] - true_ratio)
    assert judged_error < abs(black["impact_ratio_weighted"] - true_ratio)
    threshold = _proxy_entry(doc)["summary"]["proxy"]["threshold"]["groups"]["black"]
    assert threshold["impact_ratio"] is not None  # the 0.8 assignment stays beside


def _ratio_and_ci(tmp_path: Path, tables: ProxyTables, seed: int, ratio: float) -> tuple:
    pool = generate_pool(tables, n=3000, seed=seed, approval_ratio=ratio)
    doc = compute_results(_spec(_write(tmp_path, pool, f"p{seed}.csv")))
    black = {g["group"]: g for g in _proxy_entry(doc)["groups"]}["black"]
    truth = pool.groupby("true_race", observed=True)["approved"].mean()
    finding = [
        f
        for f in doc["findings"]
        if (f["attribute"], f["group"], f["metric"]) == ("race_proxy", "black", "impact_ratio")
    ]
    return black["impact_ratio_ci"], truth["black"] / truth["white"], finding[0]["status"]


@pytest.mark.slow
def test_planted_disparity_coverage_and_false_alarms(tmp_path: Path, tables: ProxyTables) -> None:
    covered = found = alarms = 0
    for seed in range(20):
        (lo, hi), true_ratio, status = _ratio_and_ci(tmp_path, tables, seed, 0.6)
        covered += lo <= true_ratio <= hi
        found += status == "fail"
        _, _, null_status = _ratio_and_ci(tmp_path, tables, 100 + seed, 1.0)
        alarms += null_status == "fail"
    print(f"coverage {covered}/20, found {found}/20, false alarms {alarms}/20")
    assert found == 20
    assert alarms <= 1
    assert covered >= 17


def test_proxy_spec_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    pd.DataFrame({"last_name": ["SMITH"], "zip": ["10001"], "approved": [1]}).to_csv(path)
    with pytest.raises(SpecError, match="first_name: required for method bifsg"):
        parse_spec(_spec(path, proxy={"method": "bifsg", "surname": "last_name", "zcta": "zip"}))
    bad = _spec(path, proxy={"method": "bisg", "surname": "surname", "zcta": "zip"})
    with pytest.raises(AuditInputError, match="'surname'") as err:
        compute_results(bad)
    assert err.value.field == "dataset.proxy.surname"


@pytest.mark.slow
def test_pricing_by_proxy_finds_the_planted_apr_gap(tmp_path: Path, tables: ProxyTables) -> None:
    pool = generate_pool(tables, n=6000, seed=5, apr_gap=0.25)
    spec = _spec(_write(tmp_path, pool), outcome="apr")
    spec["probes"] = [{"kind": "outcome-disparity", "adverse": "higher"}]
    entry = _proxy_entry(compute_results(spec))
    assert entry["reference_group"] == "white"
    black = {g["group"]: g for g in entry["groups"]}["black"]
    assert black["difference"] > 0.1 and black["p_value"] < 0.01
