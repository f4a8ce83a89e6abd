"""outcome-disparity: group means, differences, SMD and HC3 regression-adjusted differences.

Oracles are computed independently with numpy: group means, Cohen's d with the
pooled SD, least squares by ``lstsq`` and the HC3 sandwich
``(X'X)^-1 X' diag(e^2 / (1 - h)^2) X (X'X)^-1`` written out by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from probes import ProbeError, ProbeInput, get_probe
from probes.outcome_disparity import compare_outcomes


def _frame(n: int = 900, seed: int = 0, gap: float = 0.25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    race = rng.choice(["white", "black", "hispanic"], size=n, p=[0.6, 0.25, 0.15])
    score = rng.normal(700, 50, n)
    apr = 6.5 - 0.01 * (score - 700) + rng.normal(0, 0.5, n) + np.where(race != "white", gap, 0)
    return pd.DataFrame(
        {
            "race": pd.Categorical(race),
            "sex": pd.Categorical(rng.choice(["f", "m"], size=n)),
            "score": score,
            "term": rng.choice(["15y", "30y"], size=n),
            "apr": apr,
            "w": rng.uniform(0.5, 2.0, n),
        }
    )


def _run(frame: pd.DataFrame, **config: object) -> list[dict]:
    cls = get_probe("outcome-disparity")
    cfg = cls.config_model.model_validate({"kind": "outcome-disparity", "outcome": "apr", **config})
    data = ProbeInput(frame=frame, protected=("race",), min_group_size=30)
    return [e.model_dump() for e in cls().run(data=data, model=None, config=cfg).entries]


def _by_group(entry: dict) -> dict[str, dict]:
    return {g["group"]: g for g in entry["groups"]}


def _hc3(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    e = y - x @ beta
    xtx_inv = np.linalg.inv(x.T @ x)
    h = np.einsum("ij,jk,ik->i", x, xtx_inv, x)
    meat = x.T @ (x * (e**2 / (1 - h) ** 2)[:, None])
    return beta, np.sqrt(np.diag(xtx_inv @ meat @ xtx_inv))


def test_means_differences_smd_and_ratio_against_hand_computation() -> None:
    df = _frame()
    (entry,) = _run(df)
    g = _by_group(entry)
    assert entry["reference_group"] == "white" and g["white"]["reference"]
    assert entry["summary"]["reference_rule"] == "largest group"
    ref = df.apr[df.race == "white"].to_numpy()
    for name in ("black", "hispanic"):
        y = df.apr[df.race == name].to_numpy()
        row = g[name]
        assert row["n"] == len(y) and row["n_effective"] == pytest.approx(len(y))
        assert row["mean"] == pytest.approx(y.mean(), abs=1e-12)
        half = stats.t.ppf(0.975, len(y) - 1) * y.std(ddof=1) / np.sqrt(len(y))
        assert row["mean_ci"] == pytest.approx([y.mean() - half, y.mean() + half], abs=1e-9)
        assert row["difference"] == pytest.approx(y.mean() - ref.mean(), abs=1e-12)
        # HC3 for a difference of two means: s1^2 / (n1 - 1) + s2^2 / (n2 - 1)
        se = np.sqrt(y.var(ddof=1) / (len(y) - 1) + ref.var(ddof=1) / (len(ref) - 1))
        width = row["difference_ci"][1] - row["difference_ci"][0]
        assert width == pytest.approx(2 * stats.t.ppf(0.975, len(df) - 3) * se, rel=1e-9)
        pooled = np.sqrt(
            ((len(y) - 1) * y.var(ddof=1) + (len(ref) - 1) * ref.var(ddof=1))
            / (len(y) + len(ref) - 2)
        )
        assert row["standardized_mean_difference"] == pytest.approx(
            (y.mean() - ref.mean()) / pooled, abs=1e-12
        )
        assert row["ratio"] == pytest.approx(y.mean() / ref.mean(), abs=1e-12)
        # no controls: the adjusted difference is the raw one
        assert row["adjusted_difference"] == pytest.approx(row["difference"], abs=1e-12)
        assert row["p_value"] < 0.01
    assert "difference" not in g["white"]


def test_adjusted_difference_is_ols_with_hc3_errors() -> None:
    df = _frame(seed=3)
    (entry,) = _run(df, controls=["score", "term"])
    x = np.column_stack(
        [
            np.ones(len(df)),
            (df.race == "black").to_numpy(float),
            (df.race == "hispanic").to_numpy(float),
            df.score.to_numpy(),
            (df.term == "30y").to_numpy(float),  # one-hot, first level dropped
        ]
    )
    beta, se = _hc3(x, df.apr.to_numpy())
    g = _by_group(entry)
    for j, name in ((1, "black"), (2, "hispanic")):
        assert g[name]["adjusted_difference"] == pytest.approx(beta[j], abs=1e-10)
        t = beta[j] / se[j]
        p = 2 * stats.t.sf(abs(t), len(df) - x.shape[1])
        assert g[name]["adjusted_difference_p_value"] == pytest.approx(p, rel=1e-6)
    holm = sorted(
        [g["black"]["adjusted_difference_p_value"], g["hispanic"]["adjusted_difference_p_value"]]
    )
    assert sorted(
        [g[k]["adjusted_difference_p_value_holm"] for k in ("black", "hispanic")]
    ) == pytest.approx([2 * holm[0], max(2 * holm[0], holm[1])])
    assert entry["summary"]["controls"] == ["score", "term"]


def test_weights_give_weighted_means_and_wls() -> None:
    df = _frame(seed=5)
    (entry,) = _run(df, weight="w", controls=["score"])
    g = _by_group(entry)
    w = df.w.to_numpy()
    for name in ("white", "black"):
        sel = (df.race == name).to_numpy()
        assert g[name]["mean"] == pytest.approx(np.average(df.apr[sel], weights=w[sel]))
        assert g[name]["n_effective"] == pytest.approx(w[sel].sum() ** 2 / (w[sel] ** 2).sum())
        assert g[name]["n"] == int(sel.sum())
    sw = np.sqrt(w)
    x = np.column_stack(
        [np.ones(len(df)), (df.race == "black"), (df.race == "hispanic"), df.score]
    ).astype(float)
    beta = np.linalg.lstsq(x * sw[:, None], df.apr.to_numpy() * sw, rcond=None)[0]
    assert g["black"]["adjusted_difference"] == pytest.approx(beta[1], abs=1e-10)
    assert entry["summary"]["estimator"].startswith("WLS")
    assert entry["summary"]["weight"] == "w"


def test_posterior_membership_is_a_regression_on_probabilities() -> None:
    """With a race proxy each row belongs to every group with its posterior: means are
    probability-weighted, differences are the coefficients on the probabilities."""
    rng = np.random.default_rng(8)
    n = 2000
    p_black = rng.beta(0.5, 0.5, size=n)
    black = rng.random(n) < p_black
    y = 5.0 + 0.4 * black + rng.normal(0, 0.3, n)
    membership = pd.DataFrame({"white": 1 - p_black, "black": p_black})
    groups, summary = compare_outcomes(outcome=y, membership=membership, reference="white")
    g = {row["group"]: row for row in groups}
    assert g["black"]["mean"] == pytest.approx(np.average(y, weights=p_black))
    assert g["black"]["n"] == pytest.approx(p_black.sum())
    x = np.column_stack([np.ones(n), p_black])
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    assert g["black"]["difference"] == pytest.approx(beta[1], abs=1e-10)
    # the coefficient is not attenuated the way the weighted-mean difference is
    weighted_gap = g["black"]["mean"] - g["white"]["mean"]
    assert abs(g["black"]["difference"] - 0.4) < abs(weighted_gap - 0.4)
    assert summary["reference_rule"] == "config"
    with pytest.raises(ProbeError, match="membership: one row of finite, non-negative"):
        compare_outcomes(outcome=y[:10], membership=membership.iloc[:10] * np.nan)


def test_reference_choice_and_missing_outcomes() -> None:
    df = _frame(seed=1)
    df.loc[::10, "apr"] = np.nan
    (entry,) = _run(df, reference="black")
    assert entry["reference_group"] == "black"
    assert entry["summary"]["rows_missing_outcome"] == int(df.apr.isna().sum())
    assert entry["summary"]["rows_used"] == int(df.apr.notna().sum())
    assert _by_group(entry)["black"]["n"] == int(((df.race == "black") & df.apr.notna()).sum())
    two = _run(df, attributes=["race", "sex"], reference={"sex": "m"})
    assert [e["reference_group"] for e in two] == ["white", "m"]
    # unknown is never the default reference, even when largest
    df2 = df.assign(race=pd.Categorical(np.where(df.race == "black", "black", "unknown")))
    assert _run(df2)[0]["reference_group"] == "black"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"outcome": None}, "outcome: required"),
        ({"outcome": "rate"}, "outcome: column 'rate' not found; columns: race, sex"),
        ({"controls": ["ltv"]}, "controls: column 'ltv' not found"),
        ({"attributes": ["age"]}, "attributes: column 'age' not found"),
        ({"controls": ["race"]}, r"controls: \['race'\] is also the outcome or a compared"),
        ({"reference": "asian"}, "reference: 'asian' is not a group with outcomes"),
        ({"weight": "bad_w"}, "weight: column 'bad_w' needs finite non-negative numbers; row 2"),
        ({"controls": ["score", "score2"]}, "controls: the controls are collinear"),
    ],
)
def test_bad_input_names_the_field(config: dict, message: str) -> None:
    df = _frame(n=200)
    df["bad_w"] = 1.0
    df.loc[2, "bad_w"] = -1.0
    df["score2"] = 2 * df.score + 1
    with pytest.raises(ProbeError, match=message):
        _run(df, **config)


def test_non_numeric_outcome_is_refused_naming_the_row() -> None:
    df = _frame(n=100)
    df["apr"] = df.apr.astype(object)
    df.loc[4, "apr"] = "n/a"
    with pytest.raises(ProbeError, match=r"column 'apr' has 1 non-numeric .* row 4: 'n/a'"):
        _run(df)


def test_small_groups_are_flagged_and_constant_controls_dropped() -> None:
    df = _frame(n=120, seed=2)
    df["one"] = 1.0
    (entry,) = _run(df, controls=["score", "one"], min_group_size=40)
    g = _by_group(entry)
    assert g["hispanic"]["insufficient_data"] and not g["white"]["insufficient_data"]
    assert entry["summary"]["controls_dropped_constant"] == ["one"]
    lone = _frame(n=60).assign(race=pd.Categorical(["white"] * 59 + ["black"]))
    (single,) = _run(lone)  # a group of one: no robust error, reported as undefined
    assert _by_group(single)["black"]["difference_ci"] is None
    assert _by_group(single)["black"]["insufficient_data"]


def test_adverse_direction_orients_the_checked_value() -> None:
    df = _frame(seed=4, gap=-0.3)  # the groups pay less than white applicants
    (higher,) = _run(df, adverse="higher")
    (lower,) = _run(df, adverse="lower")
    (either,) = _run(df)
    b = "black"
    diff = _by_group(higher)[b]["adjusted_difference"]
    assert diff < 0
    assert _by_group(higher)[b]["adverse_adjusted_difference"] == pytest.approx(diff)
    assert _by_group(lower)[b]["adverse_adjusted_difference"] == pytest.approx(-diff)
    assert _by_group(either)[b]["adverse_adjusted_difference"] == pytest.approx(abs(diff))
    lo, hi = _by_group(higher)[b]["adjusted_difference_ci"]
    assert _by_group(higher)[b]["adverse_adjusted_difference_ci"] == pytest.approx([lo, hi])
    assert _by_group(lower)[b]["adverse_adjusted_difference_ci"] == pytest.approx([-hi, -lo])
    assert _by_group(either)[b]["adverse_adjusted_difference_ci"] is None
