"""LL144 and EEOC details of the demographic probe (issue #10 item 7).

- the ``unknown`` category is counted and reported, but left out of impact ratios
  (never the reference), their tests and findings; so is any intersection with an
  unknown level;
- ``impact_ratio_min_share`` leaves categories under that share of the rows out the
  same way, each marked with the reason, also in the LL144 table of the report;
- ``policy.max_selection_rate_sd`` adds the EEOC two-standard-deviation rule: the
  shortfall below the reference in standard deviations equals statsmodels' pooled
  two-proportion z statistic (the oracle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportions_ztest

from audit.engine.run import compute_results
from audit.reports.html import render_html


def _pool(path: Path) -> Path:
    """Sex and race with planted rates; the unknown race has the highest rate of all."""
    rows = []
    plan = {  # (sex, race): (n, selected)
        ("female", "Black"): (300, 60),
        ("female", "White"): (300, 120),
        ("male", "Black"): (300, 90),
        ("male", "White"): (300, 135),
        ("female", "Asian"): (10, 4),  # 10 of 1,330 rows: 0.75%
        ("male", None): (60, 55),  # unknown race: 92% selected
        ("female", None): (60, 50),
    }
    for (sex, race), (n, k) in plan.items():
        rows += [{"sex": sex, "race": race, "advanced": int(i < k)} for i in range(n)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _spec(path: Path, probe: dict[str, Any] | None = None, **policy: Any) -> dict[str, Any]:
    return {
        "name": "ll144",
        "domain": "hiring",
        "dataset": {"path": str(path), "prediction": "advanced", "protected": ["sex", "race"]},
        "probes": [{"kind": "demographic", "intersectional": True, **(probe or {})}],
        "policy": {"min_group_size": 5, **policy},
    }


def _entry(doc: dict[str, Any], attribute: str) -> dict[str, Any]:
    return next(p for p in doc["probes"] if p["attribute"] == attribute)


def _group(entry: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in entry["groups"] if g["group"] == name)


def test_unknown_is_counted_but_left_out_of_impact_ratios_and_findings(tmp_path: Path) -> None:
    doc = compute_results(_spec(_pool(tmp_path / "pool.csv")))
    race = _entry(doc, "race")
    unknown = _group(race, "unknown")
    assert unknown["n"] == 120 and unknown["selected"] == 105  # counted and reported
    assert unknown["selection_rate"] == pytest.approx(105 / 120)
    assert unknown["impact_ratio"] is None and unknown["impact_ratio_ci"] is None
    assert unknown["p_value"] is None and unknown["impact_ratio_excluded"] == "unknown category"
    assert race["reference_group"] == "White"  # not unknown, though its rate is the highest
    assert _group(race, "Black")["impact_ratio"] == pytest.approx((150 / 600) / (255 / 600))
    assert {"group": "unknown", "n": 120, "share": pytest.approx(120 / 1330)} | {
        "reason": "unknown category"
    } in race["impact_ratio_excluded"]
    inter = _entry(doc, "sex&race")
    assert _group(inter, "male&unknown")["impact_ratio_excluded"] == "unknown category"
    judged = {(f["attribute"], f["group"]) for f in doc["findings"]}
    assert ("race", "White") in judged and ("race", "Black") in judged
    assert not any("unknown" in group for _, group in judged)
    assert doc["manifest"]["unknown_counts"]["race"] == 120


def test_small_categories_are_left_out_only_when_asked(tmp_path: Path) -> None:
    path = _pool(tmp_path / "pool.csv")
    plain = _entry(compute_results(_spec(path)), "race")
    assert _group(plain, "Asian")["impact_ratio"] == pytest.approx((4 / 10) / (255 / 600))
    doc = compute_results(_spec(path, {"impact_ratio_min_share": 0.02}))
    asian = _group(_entry(doc, "race"), "Asian")
    assert asian["impact_ratio"] is None and asian["n"] == 10
    assert asian["impact_ratio_excluded"] == "under 2% of the rows"
    assert not any(f["group"] == "Asian" for f in doc["findings"])
    html = render_html(doc)
    ll144 = html[html.index('id="ll144"') : html.index("</section>", html.index('id="ll144"'))]
    race = ll144[ll144.index("ll144-race") : ll144.index("ll144-intersectional")]
    assert "Asian (n = 10, 0.8%) (excluded from impact ratios)" in race
    assert race.count("excluded from impact ratios</td>") == 2  # Asian and unknown rows
    assert "unknown: 120 (excluded from impact ratios)" in race.lower()


def test_eeoc_two_standard_deviations_is_an_optional_check(tmp_path: Path) -> None:
    path = _pool(tmp_path / "pool.csv")
    doc = compute_results(_spec(path))
    assert not any(f["metric"] == "selection_rate_sd" for f in doc["findings"])
    race = _entry(doc, "race")
    black = _group(race, "Black")
    z, _ = proportions_ztest([150, 255], [600, 600])  # pooled two-proportion z (oracle)
    assert black["selection_rate_sd"] == pytest.approx(-z, rel=1e-12)
    assert _group(race, "White")["selection_rate_sd"] is None  # the reference
    doc = compute_results(_spec(path, max_selection_rate_sd=2))
    sd = {
        (f["attribute"], f["group"]): f
        for f in doc["findings"]
        if f["metric"] == "selection_rate_sd"
    }
    assert sd[("race", "Black")]["status"] == "fail" and sd[("race", "Black")]["threshold"] == 2
    assert sd[("race", "Black")]["value"] == pytest.approx(-z)
    assert ("race", "White") not in sd and ("race", "unknown") not in sd
    male, female = _group(_entry(doc, "sex"), "male"), _group(_entry(doc, "sex"), "female")
    z_sex, _ = proportions_ztest([female["selected"], male["selected"]], [female["n"], male["n"]])
    assert sd[("sex", "female")]["value"] == pytest.approx(-z_sex)
    assert doc["verdict"] == "fail"
    assert np.isfinite(sd[("race", "Asian")]["value"])
