"""``audit.compare``: the two-proportion z-test against scipy, the CI rule, and "no test"."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from audit.compare import compare_results, two_proportion_z


@pytest.mark.parametrize("seed", range(5))
def test_two_proportion_z_matches_pearson_chi_squared(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n1, n2 = (int(v) for v in rng.integers(20, 5000, size=2))
    x1, x2 = int(rng.integers(1, n1)), int(rng.integers(1, n2))
    z, p = two_proportion_z(x1, n1, x2, n2)
    chi2, oracle, _, _ = chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    assert p == pytest.approx(oracle, rel=1e-9)
    assert z**2 == pytest.approx(chi2, rel=1e-9)
    assert (z > 0) == (x2 / n2 > x1 / n1)


def test_degenerate_samples() -> None:
    assert two_proportion_z(0, 10, 0, 20) == (0.0, 1.0)  # nobody selected either time
    assert two_proportion_z(10, 10, 20, 20) == (0.0, 1.0)
    with pytest.raises(ValueError, match="n:"):
        two_proportion_z(0, 0, 1, 2)


def _doc(verdict: str, groups: list[dict], summary: dict | None = None) -> dict:
    return {"verdict": verdict, "findings": [],
            "probes": [{"kind": "demographic", "attribute": "sex", "groups": groups,
                        "summary": summary or {}}]}  # fmt: skip


def test_each_metric_gets_the_right_test() -> None:
    a = _doc("fail", [
        {"group": "f", "n": 100, "selected": 20, "selection_rate": 0.2,
         "impact_ratio": 0.4, "impact_ratio_ci": [0.3, 0.5], "accuracy": 0.7},
        {"group": "m", "n": 100, "selected": 50, "selection_rate": 0.5,
         "impact_ratio": 1.0, "impact_ratio_ci": None, "tpr": 0.6, "tpr_ci": [0.5, 0.7]},
    ], {"demographic_parity_difference": 0.3})  # fmt: skip
    b = _doc("pass", [
        {"group": "f", "n": 100, "selected": 45, "selection_rate": 0.45,
         "impact_ratio": 0.9, "impact_ratio_ci": [0.8, 1.0], "accuracy": 0.71},
        {"group": "m", "n": 100, "selected": 50, "selection_rate": 0.5,
         "impact_ratio": 1.0, "impact_ratio_ci": None, "tpr": 0.62, "tpr_ci": [0.55, 0.69]},
        {"group": "x", "n": 5, "selected": 1, "selection_rate": 0.2},
    ], {"demographic_parity_difference": 0.05})  # fmt: skip
    out = compare_results(a, b)
    rows = {(m["group"], m["metric"]): m for m in out["metrics"]}
    assert out["verdict"] == {"a": "fail", "b": "pass", "changed": True}
    f_rate = rows[("f", "selection_rate")]
    assert (f_rate["test"], f_rate["significant"]) == ("two-proportion z", True)
    assert f_rate["change"] == pytest.approx(0.25)
    assert rows[("m", "selection_rate")]["significant"] is False
    assert rows[("f", "impact_ratio")]["test"] == "non-overlapping CIs"
    assert rows[("f", "impact_ratio")]["significant"] is True
    assert rows[("m", "tpr")]["significant"] is False  # overlapping CIs
    for key in [("f", "accuracy"), ("m", "impact_ratio"), (None, "demographic_parity_difference")]:
        assert (rows[key]["test"], rows[key]["significant"]) == (None, None)  # no test: no guess
    assert ("x", "selection_rate") not in rows and out["only_in_b"] == 1
    assert out["significant"] == 2
