"""probes.proxy.imputation: seeded draws from posteriors, Rubin's rules, threshold assignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from probes.proxy import UNASSIGNED, assign_by_threshold, draw_races, imputed_labels, rubin


def test_draws_follow_the_posteriors_and_are_seeded() -> None:
    post = np.array([[0.2, 0.5, 0.3], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    draws = draw_races(post, m=20_000, seed=4)
    assert draws.shape == (20_000, 3)
    freq = np.stack([(draws[:, 0] == k).mean() for k in range(3)])
    np.testing.assert_allclose(freq, post[0], atol=0.015)
    assert (draws[:, 1] == 0).all() and (draws[:, 2] == 2).all()  # certain rows never move
    assert (draw_races(post, m=5, seed=4) == draws[:5]).all()  # same seed, same draws
    assert not (draw_races(post, m=5, seed=5) == draws[:5]).all()


def test_imputed_labels_use_the_posterior_columns() -> None:
    post = pd.DataFrame({"white": [0.0, 1.0], "black": [1.0, 0.0]})
    labels = imputed_labels(post, m=2, seed=0)
    assert [list(x) for x in labels] == [["black", "white"], ["black", "white"]]
    assert list(labels[0].categories) == ["white", "black"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([[0.5, np.nan]]), "row 0 is not a probability vector"),
        (np.array([[0.5, 0.5], [-0.1, 1.1]]), "row 1"),
        (np.array([[0.0, 0.0]]), "positive sum"),
        (np.array([0.5, 0.5]), "shape"),
    ],
)
def test_draws_refuse_rows_that_are_not_probabilities(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        draw_races(bad, m=1, seed=0)
    with pytest.raises(ValueError, match="at least one imputation"):
        draw_races(np.array([[1.0]]), m=0, seed=0)


def test_rubin_rules_by_hand() -> None:
    q = np.array([1.0, 1.2, 0.8, 1.1, 0.9])
    u = np.array([0.04, 0.05, 0.03, 0.04, 0.04])
    res = rubin(q, u)
    w, b = 0.04, np.var(q, ddof=1)  # B = 0.025
    t = w + 1.2 * b
    r = 1.2 * b / w
    assert res.estimate == pytest.approx(1.0)
    assert (res.within, res.between, res.variance) == pytest.approx((w, b, t))
    assert res.df == pytest.approx(4 * (1 + 1 / r) ** 2)
    assert res.missing_information == pytest.approx(1.2 * b / t)
    lo, hi = res.ci(0.95)
    half = stats.t.ppf(0.975, res.df) * np.sqrt(t)
    assert (lo, hi) == pytest.approx((1.0 - half, 1.0 + half))
    assert res.p_value(0.0) == pytest.approx(2 * stats.t.sf(1.0 / np.sqrt(t), res.df))
    # Barnard & Rubin (1999): never more df than the complete data have
    small = rubin(q, u, df_complete=10)
    v, gamma = 10.0, 1.2 * b / t
    df_obs = (v + 1) / (v + 3) * v * (1 - gamma)
    assert small.df == pytest.approx(1 / (1 / res.df + 1 / df_obs))
    assert small.df < 10


def test_rubin_without_between_variance_and_vectorised() -> None:
    same = rubin([2.0, 2.0, 2.0], [0.1, 0.1, 0.1])
    assert same.variance == pytest.approx(0.1) and same.between == 0
    assert np.isinf(same.df)
    assert rubin([2.0, 2.0], [0.1, 0.1], df_complete=30).df == 30
    q = np.array([[1.0, 5.0], [3.0, 5.0]])
    u = np.array([[0.1, 0.2], [0.3, 0.2]])
    res = rubin(q, u)
    np.testing.assert_allclose(res.estimate, [2.0, 5.0])
    np.testing.assert_allclose(res.variance, [0.2 + 1.5 * 2.0, 0.2])
    with pytest.raises(ValueError, match="at least two imputations"):
        rubin([1.0], [0.1])
    with pytest.raises(ValueError, match="same shape"):
        rubin([1.0, 2.0], [0.1])
    with pytest.raises(ValueError, match="non-negative"):
        rubin([1.0, 2.0], [0.1, -0.1])


def test_rubin_intervals_cover_with_proper_imputations() -> None:
    """The textbook check: a normal mean with 40% of values missing completely at random,
    imputed from the posterior predictive m = 20 times. Rubin's interval covers the true
    mean about 95% of the time; one imputation treated as complete data covers less."""
    rng = np.random.default_rng(11)
    trials, n, m = 400, 60, 20
    covered_mi = covered_one = 0
    for _ in range(trials):
        y = rng.normal(3.0, 2.0, size=n)
        seen = y[rng.random(n) >= 0.4]
        k = len(seen)
        est, var = [], []
        for _ in range(m):
            sigma2 = (k - 1) * seen.var(ddof=1) / rng.chisquare(k - 1)
            mu = rng.normal(seen.mean(), np.sqrt(sigma2 / k))
            full = np.concatenate([seen, rng.normal(mu, np.sqrt(sigma2), size=n - k)])
            est.append(full.mean())
            var.append(full.var(ddof=1) / n)
        lo, hi = rubin(est, var, df_complete=n - 1).ci(0.95)
        covered_mi += lo <= 3.0 <= hi
        half = stats.t.ppf(0.975, n - 1) * np.sqrt(var[0])
        covered_one += est[0] - half <= 3.0 <= est[0] + half
    assert 0.92 <= covered_mi / trials <= 0.985
    assert covered_one / trials < 0.92


def test_threshold_assignment_at_0_8() -> None:
    post = pd.DataFrame(
        {"white": [0.85, 0.5, 0.1, 0.79999], "black": [0.1, 0.45, 0.8, 0.2], "api": [0.05] * 4}
    )
    got = assign_by_threshold(post)
    assert list(got) == ["white", UNASSIGNED, "black", UNASSIGNED]
    assert list(got.categories) == ["white", "black", "api", UNASSIGNED]
    assert list(assign_by_threshold(post, threshold=0.6)) == ["white", UNASSIGNED, "black", "white"]
    with pytest.raises(ValueError, match="threshold: must be in"):
        assign_by_threshold(post, threshold=0.4)
    with pytest.raises(ValueError, match="already a posterior column"):
        assign_by_threshold(post, unassigned="api")
